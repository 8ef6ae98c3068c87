"""The generative second opinion: asked only when the classifier is unsure, obeyed when it names an
option, ignored when the model fails or answers nonsense; wired into the cascade by `nlu.judge`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.nlu.config import NluConfig
from bot.nlu.judge import GenerativeIntentJudge, parse_choice
from bot.nlu.pipeline import build_annotators


def ranked(*guesses: tuple[str, float], source: str = "embedding") -> Annotations:
    annotations = Annotations(language="en")
    annotations.ranking = [IntentGuess(name, confidence, source) for name, confidence in guesses]
    if guesses and guesses[0][1] >= 0.5:
        annotations.intent = annotations.ranking[0]
    return annotations


def judge_answering(catalogue, answer: str, **config) -> tuple[GenerativeIntentJudge, FakeLanguageModel]:
    model = FakeLanguageModel(answer)
    return GenerativeIntentJudge(catalogue, model, NluConfig(**config)), model


async def test_an_unsure_guess_is_settled_by_the_models_pick(catalogue) -> None:
    judge, model = judge_answering(catalogue, " 2.")
    annotations = ranked(("weather", 0.55), ("music", 0.53), ("story", 0.1))
    await judge.annotate("play me something about the rain", annotations)
    assert annotations.intent is not None and annotations.intent.name == "music"
    assert annotations.intent.source == "judge" and annotations.intent.confidence >= 0.9
    assert annotations.values["judge"] == {"asked": ["weather", "music", "story"], "before": "weather",
                                           "after": "music"}
    # The prompt offers the candidates with their descriptions, and a way out.
    prompt = model.calls[0].prompt[-1].content
    assert "1. weather: the user asks about the weather forecast" in prompt
    assert "2. music: play some music song" in prompt and "0. none of these" in prompt
    assert model.calls[0].params.temperature == 0.0


async def test_zero_means_out_of_scope(catalogue) -> None:
    judge, _ = judge_answering(catalogue, "0")
    annotations = ranked(("weather", 0.6), ("story", 0.3))
    await judge.annotate("how tall is the eiffel tower", annotations)
    assert annotations.intent is None


@pytest.mark.parametrize("guesses", [
    [("weather", 0.97), ("music", 0.2)],   # sure: nothing to ask
    [("weather", 0.05), ("music", 0.04)],  # clearly out of scope
    [],
])
async def test_a_clear_case_costs_no_generation(catalogue, guesses) -> None:
    judge, model = judge_answering(catalogue, "2")
    annotations = ranked(*guesses)
    before = annotations.intent
    await judge.annotate("whatever", annotations)
    assert model.calls == [] and annotations.intent == before


async def test_a_near_tie_is_asked_even_when_confident(catalogue) -> None:
    judge, model = judge_answering(catalogue, "2", judge_margin=0.05)
    annotations = ranked(("weather", 0.91), ("music", 0.89))
    await judge.annotate("rainy day songs", annotations)
    assert len(model.calls) == 1 and annotations.intent.name == "music"


async def test_rules_are_never_second_guessed(catalogue) -> None:
    judge, model = judge_answering(catalogue, "1")
    annotations = ranked(("weather", 0.6), ("music", 0.55))
    annotations.intent = IntentGuess("story", 1.0, "rules")
    await judge.annotate("/story", annotations)
    assert model.calls == [] and annotations.intent.name == "story"


@pytest.mark.parametrize("script", [
    FakeScript(outputs=("I think it is the weather one",)),   # no number
    FakeScript(outputs=("7",)),                               # not an option
    FakeScript(outputs=("2",), fail_after=0),                 # the model breaks
    FakeScript(outputs=("2",), delay_s=0.5),                  # too slow
])
async def test_without_a_usable_answer_the_first_guess_stands(catalogue, script) -> None:
    judge = GenerativeIntentJudge(catalogue, FakeLanguageModel(script=script), NluConfig(judge_timeout_s=0.2))
    annotations = ranked(("weather", 0.55), ("music", 0.5))
    await judge.annotate("rain music", annotations)
    assert annotations.intent is not None and annotations.intent.name == "weather"
    assert "judge" not in annotations.values


def test_parse_choice_reads_the_first_number_in_range() -> None:
    assert parse_choice(" 3.", 4) == 3 and parse_choice("Answer: 0", 4) == 0
    assert parse_choice("5", 4) is None and parse_choice("none", 4) is None


def test_the_cascade_has_a_judge_only_when_asked_and_a_model_is_there(catalogue, tmp_path: Path) -> None:
    model = FakeLanguageModel("1")
    config = NluConfig(language=False, sentiment=False, offensive=False)
    names = [a.name for a in build_annotators(config, catalogue, tmp_path, model)]
    assert "judge" not in names
    on = config.model_copy(update={"judge": True})
    names = [a.name for a in build_annotators(on, catalogue, tmp_path, model)]
    # Right after the classifier it second-guesses, before the annotators for what nothing was sure of.
    assert names.index("judge") == names.index("embedding") + 1 and names.index("judge") < names.index("fuzzy")
    assert "judge" not in [a.name for a in build_annotators(on, catalogue, tmp_path, None)]


def test_the_noise_intent_is_never_offered(catalogue) -> None:
    from bot.nlu.catalogue import Intent, IntentCatalogue

    with_noise = IntentCatalogue([*catalogue, Intent(name="noise", descriptions={"en": ["made up words"]})])
    judge = GenerativeIntentJudge(with_noise, FakeLanguageModel(" 1."), NluConfig())
    options = judge.options(ranked(("noise", 0.55), ("weather", 0.53), ("music", 0.3)))
    assert [g.name for g in options][:2] == ["weather", "music"]
