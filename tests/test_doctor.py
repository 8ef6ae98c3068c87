"""`tandem doctor`: reading the CPU's flags from /proc/cpuinfo, and a real run on the bundled SmolLM2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.doctor import llama_build_flags
from bot.models.cpu import cpu_flags, cpu_model_name, has_amx, llama_cpu_flags
from tests.models.conftest import needs_llama_cpp, needs_smollm2

AMD_CPUINFO = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""

INTEL_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8
"""


def test_an_amd_cpu_without_avx512_or_amx() -> None:
    flags = cpu_flags(AMD_CPUINFO)
    assert cpu_model_name(AMD_CPUINFO) == "AMD EPYC 7B13 64-Core Processor"
    assert llama_cpu_flags(flags) == ["avx", "avx2", "fma", "f16c"]
    assert not has_amx(flags)


def test_an_intel_cpu_with_avx512_and_amx() -> None:
    flags = cpu_flags(INTEL_CPUINFO)
    assert cpu_model_name(INTEL_CPUINFO) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert llama_cpu_flags(flags) == ["avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
                                      "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"]
    assert has_amx(flags)


def test_amx_needs_a_data_type_beside_the_tiles() -> None:
    assert not has_amx({"avx2", "amx_tile"})


def test_a_cpuinfo_without_name_or_flags_gives_nothing() -> None:
    assert cpu_model_name("processor\t: 0\nFeatures\t: fp asimd\n") is None
    assert cpu_flags("processor\t: 0\n") == set()


def test_llama_build_flags_are_read_beside_the_virtualenv(tmp_path: Path) -> None:
    assert llama_build_flags(tmp_path) == "unknown"
    (tmp_path / ".llama-cmake-args").write_text("-DGGML_NATIVE=OFF -DGGML_AVX2=ON\n")
    assert llama_build_flags(tmp_path) == "-DGGML_NATIVE=OFF -DGGML_AVX2=ON"


def test_a_model_that_does_not_exist_fails_in_one_line(settings) -> None:
    result = CliRunner().invoke(main, ["doctor", "--model", "/nowhere/model.gguf"])
    assert result.exit_code == 1
    assert "model: FAILED: setting `lm.model`" in result.output
    assert "Traceback" not in result.output and "speed:" not in result.output


@pytest.mark.slow
@needs_smollm2
@needs_llama_cpp
def test_doctor_measures_the_bundled_model_on_llama_cpp(settings, monkeypatch) -> None:
    monkeypatch.setenv("TANDEM_LM__N_THREADS", "1")
    result = CliRunner().invoke(main, ["doctor", "--model", "bundled:smollm2"])
    assert result.exit_code == 0, result.output
    cpu = re.search(r"^cpu: (.+)$", result.output, re.MULTILINE)
    assert cpu and cpu.group(1).strip() not in ("", "unknown")
    assert re.search(r"^backend: llama_cpp \(llama-cpp-python \d", result.output, re.MULTILINE)
    assert re.search(r"^model file: .+\.gguf \(\d+\.\d MiB\)$", result.output, re.MULTILINE)
    speed = re.search(r"^speed: (\d+\.\d) tokens/s \((\d+) tokens", result.output, re.MULTILINE)
    assert speed and int(speed.group(2)) > 0
    assert "FAILED" not in result.output


@pytest.mark.slow
@needs_llama_cpp
def test_a_model_that_fails_to_load_is_reported_in_one_line_with_a_hint(settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not a model")
    result = CliRunner().invoke(main, ["doctor", "--model", str(broken)])
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("generation: FAILED: ")]
    assert len(failed) == 1 and str(broken) in failed[0]
    assert "lm.weight_repack" in result.output and "TANDEM_LM__BACKEND=transformers" in result.output
    assert "Traceback" not in result.output and "speed:" not in result.output
