"""lm.weight_repack: llama.cpp's weight repacking is off by default on CPUs with AMX (whose repack path
crashes) and on elsewhere; turning it off really loads the model without extra buffer types."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.models.base import GenerationParams
from bot.models.cpu import cpu_flags
from bot.models.llama_cpp_backend import LlamaCppModel, open_llama, weight_repack_enabled
from tests.models.conftest import needs_llama_cpp, needs_smollm2

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu vme sse sse2 avx avx2 fma f16c avx512f avx512_vnni avx512_bf16
"""
INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu sse avx avx2 avx512f avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8
"""


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    assert {"avx2", "avx512_bf16"} <= cpu_flags(AMD)
    assert "amx_tile" in cpu_flags(INTEL_AMX)
    assert cpu_flags("no flags here") == set()


@pytest.mark.parametrize(("setting", "cpuinfo", "expected"), [
    ("auto", AMD, True),
    ("auto", INTEL_AMX, False),
    ("on", INTEL_AMX, True),
    ("off", AMD, False),
])
def test_auto_turns_repacking_off_only_where_the_cpu_has_amx(setting: str, cpuinfo: str, expected: bool) -> None:
    assert weight_repack_enabled(setting, cpu_flags(cpuinfo)) is expected


@needs_llama_cpp
@needs_smollm2
def test_loading_without_repacking_sets_the_parameter_and_restores_the_default(smollm2_gguf: Path) -> None:
    import llama_cpp

    llm = open_llama(model_path=str(smollm2_gguf), n_ctx=256, n_threads=1, weight_repack=False)
    try:
        assert llm.model_params.use_extra_bufts is False
        assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True
        out = llm.create_completion("Once upon a time", max_tokens=8, temperature=0.0)
        assert out["choices"][0]["text"].strip()
    finally:
        llm.close()


@needs_llama_cpp
@needs_smollm2
async def test_the_backend_generates_the_same_with_repacking_off(smollm2_gguf: Path) -> None:
    params = GenerationParams(max_new_tokens=12, temperature=0.0, seed=1)
    texts = []
    for setting in ("on", "off"):
        model = LlamaCppModel(smollm2_gguf, n_threads=1, context_window=512, weight_repack=setting)
        await model.start()
        try:
            assert model.weight_repack is (setting == "on")
            texts.append(await model.generate("The fox looked at the moon and", params))
        finally:
            await model.close()
    assert texts[0].strip() and texts[1].strip()
