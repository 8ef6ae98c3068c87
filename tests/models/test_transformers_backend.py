"""The transformers backend on the real SmolLM2-135M (GGUF converted once into the test model cache)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from bot.core.errors import ModelTimeout
from bot.models.base import ChatMessage, GenerationParams
from bot.models.config import LmConfig
from bot.models.runtime import build_language_model

from .conftest import needs_smollm2, needs_torch, stats_recorded_after

pytestmark = [pytest.mark.slow, needs_smollm2, needs_torch, pytest.mark.asyncio(loop_scope="module")]

STORY = (
    "Mira the fox lived at the edge of a quiet pine forest. Every evening she walked to the river "
    "to watch the lights of the village across the water. One cold night she found"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model(model_cache):
    config = LmConfig(model="bundled:smollm2", backend="transformers", n_threads=1, timeout_s=120, cache_slots=2)
    lm = await asyncio.to_thread(build_language_model, config, model_cache, progress=False)
    await lm.start()
    yield lm
    await lm.close()


async def test_chat_prompt_streams_an_answer(model) -> None:
    messages = [ChatMessage("user", "Say hello to a fox in one short sentence.")]
    pieces = [p async for p in model.stream(messages, GenerationParams(max_new_tokens=24, seed=1))]
    text = "".join(pieces)
    assert len(pieces) > 2 and text.strip()
    assert "<|im_start|>" not in text and "<|im_end|>" not in text


async def test_different_seeds_give_different_text_and_the_same_seed_repeats(model) -> None:
    params = GenerationParams(max_new_tokens=8, temperature=1.0)
    first = await model.generate(STORY, params)
    second = await model.generate(STORY, params)
    assert first != second
    again = [await model.generate(STORY, GenerationParams(max_new_tokens=8, seed=42)) for _ in range(2)]
    assert again[0] == again[1]


async def test_cached_prefix_gives_the_same_text_as_a_cold_run(model) -> None:
    params = GenerationParams(max_new_tokens=12, seed=3)
    first = await model.generate(STORY, params, cache_key="story-a")
    continued = STORY + first
    warm = await model.generate(continued, params, cache_key="story-a")
    assert model.last_stats["cached_tokens"] >= model.count_tokens(STORY) - 2
    cold = await model.generate(continued, params, cache_key="story-b")
    assert model.last_stats["cached_tokens"] == 0
    assert warm == cold


async def test_banned_words_are_never_produced(model) -> None:
    prompt = "The king said: I love my big red"
    free = await model.generate(prompt, GenerationParams(max_new_tokens=3, temperature=0))
    word = free.split()[0].strip(".,!?").lower()
    banned = await model.generate(prompt, GenerationParams(max_new_tokens=3, temperature=0, banned_words=(word,)))
    assert word not in banned.lower()


async def test_closing_the_stream_stops_the_worker(model) -> None:
    # With this seed the model writes all 200 tokens when left alone, so fewer means the close stopped it.
    params = GenerationParams(max_new_tokens=200, seed=1)
    before = model.last_stats
    stream = model.stream(STORY, params)
    await anext(stream)
    await stream.aclose()
    closed = await stats_recorded_after(model, before)
    assert 1 <= closed["new_tokens"] < params.max_new_tokens
    # The one slot is free again: the next generation gets it (it would raise ModelTimeout otherwise).
    await model.generate("Hi", GenerationParams(max_new_tokens=1, seed=1))


async def test_timeout_mid_stream_keeps_the_pieces(model) -> None:
    model.timeout_s = 4
    got: list[str] = []
    try:
        with pytest.raises(ModelTimeout):
            async for piece in model.stream(STORY, GenerationParams(max_new_tokens=2000, seed=9)):
                got.append(piece)
    finally:
        model.timeout_s = 120
    assert got
