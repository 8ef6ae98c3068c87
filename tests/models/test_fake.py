"""FakeLanguageModel keeps the LanguageModel contract that skills are tested against."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.errors import ModelError, ModelTimeout
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.models.fake import FakeLanguageModel, FakeScript


def test_fake_satisfies_the_protocol() -> None:
    assert isinstance(FakeLanguageModel(), LanguageModel)


async def test_scripted_outputs_come_in_turn_and_the_last_repeats() -> None:
    model = FakeLanguageModel(["one two", "three"])
    params = GenerationParams()
    assert [await model.generate("p", params) for _ in range(3)] == ["one two", "three", "three"]
    assert [c.prompt for c in model.calls] == ["p", "p", "p"]


async def test_streams_word_by_word_and_records_the_call() -> None:
    model = FakeLanguageModel("The fox ran home.")
    messages = [ChatMessage("user", "hi")]
    pieces = [p async for p in model.stream(messages, GenerationParams(), cache_key="story-1")]
    assert pieces == ["The ", "fox ", "ran ", "home."]
    assert model.calls[0].cache_key == "story-1"
    assert model.calls[0].text == "The fox ran home."


async def test_max_new_tokens_and_stop_are_honoured() -> None:
    model = FakeLanguageModel("a b c d e f")
    assert await model.generate("p", GenerationParams(max_new_tokens=3)) == "a b c "
    assert await model.generate("p", GenerationParams(stop=(" d",))) == "a b c"


async def test_seeded_script_shows_that_retries_differ() -> None:
    model = FakeLanguageModel(script=FakeScript(outputs=("A tale.",), seeded=True))
    first = await model.generate("p", GenerationParams())
    second = await model.generate("p", GenerationParams())
    assert first != second
    assert await model.generate("p", GenerationParams(seed=5)) == "A tale. #5"


async def test_scripted_failure_comes_after_partial_output() -> None:
    model = FakeLanguageModel(script=FakeScript(outputs=("a b c d",), fail_after=2))
    got = []
    with pytest.raises(ModelError):
        async for piece in model.stream("p", GenerationParams()):
            got.append(piece)
    assert got == ["a ", "b "]


async def test_a_delay_longer_than_the_timeout_times_out_before_any_piece() -> None:
    model = FakeLanguageModel("a b c", delay_s=5.0, timeout_s=0.5)
    got = []
    with pytest.raises(ModelTimeout):
        async for piece in model.stream("p", GenerationParams()):
            got.append(piece)
    assert got == [] and model.calls[0].text == ""


async def test_a_timeout_mid_stream_keeps_the_pieces_made_before_it() -> None:
    # Each piece costs 0.05 s of a 0.12 s budget: the first always fits, a third never does,
    # whatever the machine's speed (a slow machine only yields fewer pieces).
    model = FakeLanguageModel("a b c d e f g h", delay_s=0.05, timeout_s=0.12)
    got = []
    with pytest.raises(ModelTimeout):
        async for piece in model.stream("p", GenerationParams()):
            got.append(piece)
    assert got in (["a "], ["a ", "b "])
    assert model.calls[0].text == "".join(got) and model.active == 0


async def test_concurrency_limit_and_cancellation() -> None:
    model = FakeLanguageModel("a b c d e f g h", delay_s=0.01, max_concurrent=2)
    await asyncio.gather(*(model.generate("p", GenerationParams()) for _ in range(5)))
    assert model.peak_active == 2
    stream = model.stream("p", GenerationParams())
    await anext(stream)
    await stream.aclose()
    assert model.calls[-1].cancelled and model.active == 0
