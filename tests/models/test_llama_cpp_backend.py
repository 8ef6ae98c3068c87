"""The llama.cpp backend on the real SmolLM2-135M GGUF: streaming, seeds, cache reuse, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio

from bot.core.errors import ConfigError, ModelTimeout
from bot.models.base import ChatMessage, GenerationParams
from bot.models.config import LmConfig
from bot.models.runtime import build_language_model

from .conftest import needs_llama_cpp, needs_smollm2, stats_recorded_after

pytestmark = [pytest.mark.slow, needs_smollm2, needs_llama_cpp, pytest.mark.asyncio(loop_scope="module")]

STORY = (
    "Mira the fox lived at the edge of a quiet pine forest. Every evening she walked to the river "
    "to watch the lights of the village across the water. One cold night she found"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model(model_cache):
    config = LmConfig(model="bundled:smollm2", backend="llama_cpp", n_threads=1, context_window=2048,
                      timeout_s=60, cache_slots=2)
    lm = build_language_model(config, model_cache, progress=False)
    await lm.start()
    yield lm
    await lm.close()


async def test_chat_prompt_uses_the_gguf_template(model) -> None:
    messages = [ChatMessage("system", "You are brief."), ChatMessage("user", "Say hello to a fox.")]
    ids = model.encode_prompt(messages)
    assert model.count_tokens("<|im_start|>") > 1  # plain text is not parsed as special tokens
    pieces = [p async for p in model.stream(messages, GenerationParams(max_new_tokens=24))]
    text = "".join(pieces)
    assert len(pieces) > 2 and text.strip() and "<|im_end|>" not in text
    assert len(ids) < 40


async def test_different_seeds_give_different_text_and_the_same_seed_repeats(model) -> None:
    params = GenerationParams(max_new_tokens=16, temperature=1.0)
    candidates = {await model.generate(STORY, params) for _ in range(3)}
    assert len(candidates) == 3
    same = GenerationParams(max_new_tokens=16, seed=42)
    assert await model.generate(STORY, same) == await model.generate(STORY, same)


async def test_continuing_a_story_reuses_its_cached_prefix(model) -> None:
    params = GenerationParams(max_new_tokens=16, seed=1)
    first = await model.generate(STORY, params, cache_key="story-1")
    await model.generate("Something else entirely, about cooking pasta.", params, cache_key="story-2")
    # story-1 kept its own context, so its whole earlier prompt and answer are still cached.
    await model.generate(STORY + first + " Then", params, cache_key="story-1")
    assert model.last_stats["cached_tokens"] >= model.count_tokens(STORY + first) - 2


async def test_cached_and_cold_runs_give_the_same_text(model) -> None:
    params = GenerationParams(max_new_tokens=12, seed=7)
    await model.generate(STORY, params, cache_key="warm")
    warm = await model.generate(STORY + " a key", params, cache_key="warm")
    cached = model.last_stats["cached_tokens"]
    await model.generate("Unrelated text to push the cache out.", params, cache_key="cold")
    await model.generate("Unrelated text again.", params, cache_key="cold2")
    cold = await model.generate(STORY + " a key", params, cache_key="cold3")
    assert cached > 10 and model.last_stats["cached_tokens"] < cached
    assert warm == cold


async def test_one_context_serves_many_stories_through_saved_caches(model) -> None:
    openings = {"a": "Apples fell from the old tree", "b": "Bears slept in the deep cave",
                "c": "Cats watched the silver moon", "d": "Dogs ran along the wide beach"}
    for key, text in openings.items():
        await model.generate(text, GenerationParams(max_new_tokens=2), cache_key=key)
    # One context (max_concurrent=1): every Llama object carries its own copy of the weights.
    assert model.pool.contexts == 1
    assert model.pool.saved_keys == ["b", "c"]  # "d" is live in the context, "a" was evicted (cache_slots=2)
    await model.generate(openings["b"] + " all winter.", GenerationParams(max_new_tokens=2), cache_key="b")
    assert model.last_stats["cached_tokens"] >= model.count_tokens(openings["b"]) - 1
    await model.generate(openings["a"] + " all winter.", GenerationParams(max_new_tokens=2), cache_key="a")
    assert model.last_stats["cached_tokens"] <= 1  # evicted: evaluated afresh


async def test_banned_words_are_never_produced(model) -> None:
    prompt = "The king said: I love my big red"
    free = await model.generate(prompt, GenerationParams(max_new_tokens=4, temperature=0))
    word = free.split()[0].strip(".,!?").lower()
    banned = await model.generate(prompt, GenerationParams(max_new_tokens=4, temperature=0, banned_words=(word,)))
    assert word not in banned.lower().split()


async def test_stop_string_ends_the_answer_before_it(model) -> None:
    params = GenerationParams(max_new_tokens=30, temperature=0, stop=(",",))
    text = await model.generate("Count: one, two, three, four,", params)
    assert "," not in text and text.strip()
    assert model.last_stats["new_tokens"] < 10


async def test_closing_the_stream_stops_generation_early(model) -> None:
    # With this seed the model writes all 500 tokens when left alone, so fewer means the close stopped it.
    params = GenerationParams(max_new_tokens=500, seed=5)
    before = model.last_stats
    stream = model.stream(STORY, params)
    await anext(stream)
    await stream.aclose()
    closed = await stats_recorded_after(model, before)
    assert 1 <= closed["new_tokens"] < params.max_new_tokens
    # The single slot is free again: the next generation gets it (it would raise ModelTimeout otherwise).
    await model.generate("Hi", GenerationParams(max_new_tokens=1, seed=1))


async def test_timeout_mid_stream_keeps_the_pieces(model) -> None:
    model.timeout_s = 0.6
    got: list[str] = []
    try:
        with pytest.raises(ModelTimeout):
            async for piece in model.stream(STORY, GenerationParams(max_new_tokens=1500, temperature=1.2)):
                got.append(piece)
    finally:
        model.timeout_s = 60
    assert got


async def test_concurrency_limit_queues_the_second_generation(model_cache) -> None:
    config = LmConfig(model="bundled:smollm2", n_threads=1, context_window=512, max_concurrent=1, timeout_s=60)
    lm = build_language_model(config, model_cache, progress=False)
    await lm.start()
    order: list[str] = []

    async def one(tag: str) -> None:
        async for _ in lm.stream(STORY, GenerationParams(max_new_tokens=8)):
            order.append(tag)

    await asyncio.gather(one("a"), one("b"))
    await lm.close()
    # With one slot the streams cannot interleave: all of a's pieces come before b's.
    assert order == sorted(order)


async def test_a_broken_gguf_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    lm = build_language_model(LmConfig(model=str(broken), context_window=512), tmp_path)
    with pytest.raises(ConfigError, match=r"`lm.model`.*broken.gguf"):
        await lm.start()
