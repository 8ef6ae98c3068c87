"""Typo-tolerant matching against the shipped catalogue's examples: misspellings and chat spellings of
what an example says find its intent; other messages, and near ties between intents, find none."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.fuzzy import FuzzyExampleAnnotator, normalise
from bot.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def fuzzy() -> FuzzyExampleAnnotator:
    return FuzzyExampleAnnotator(IntentCatalogue.load(PROJECT_ROOT / "intents"))


@pytest.mark.parametrize(("text", "intent"), [
    ("wat can u do", "help"),
    ("helo", "greeting"),
    ("thank yuo so much", "thanks"),
    ("lets writte a storry", "story"),
    ("давай напешем исторею", "story"),
    ("спасиба большое", "thanks"),
    ("до свиданя", "goodbye"),
])
def test_misspelt_examples_find_their_intent(fuzzy, text, intent) -> None:
    found = fuzzy.best(text)
    assert found is not None and found[0] == intent


@pytest.mark.parametrize("text", ["what's the capital of Peru?", "book me a flight to Rome", "asdkjh qwe", "ok",
                                  "I just made pancakes for dinner", "купи хлеба"])
def test_other_messages_find_nothing(fuzzy, text) -> None:
    assert fuzzy.best(text) is None


def test_chat_spellings_are_spelled_out() -> None:
    assert normalise("Wat r U doin, pls?") == "what are you doin please"
    assert normalise("Чё как, спс") == "что как спасибо"


async def test_it_never_overrides_an_earlier_intent_and_confidence_grows_with_similarity(fuzzy) -> None:
    annotations = Annotations(intent=IntentGuess("story", 1.0, "rules"))
    await fuzzy.annotate("helo", annotations)
    assert annotations.intent.name == "story"
    close, exact = Annotations(), Annotations()
    await fuzzy.annotate("wat can u do", close)
    await fuzzy.annotate("what can you do", exact)
    assert close.intent.source == "fuzzy" and close.ranking[0] == close.intent
    assert 0.5 <= close.intent.confidence <= exact.intent.confidence <= 0.95


@pytest.mark.parametrize(("guess", "routed"), [
    (IntentGuess("reset", 0.65, "embedding"), ("story", "fuzzy")),  # unsure: the near-copy wins
    (IntentGuess("reset", 0.9, "embedding"), ("reset", "embedding")),  # a sure classifier stays
    (IntentGuess("reset", 0.6, "rules"), ("reset", "rules")),  # a rule is never second-guessed
    (IntentGuess("story", 0.55, "embedding"), ("story", "embedding")),  # agreeing: nothing to change
])
async def test_a_near_copy_of_an_example_overrules_only_an_unsure_classifier(guess, routed) -> None:
    fuzzy = FuzzyExampleAnnotator(IntentCatalogue.load(PROJECT_ROOT / "intents"), overrule_below=0.8)
    annotations = Annotations(intent=guess, ranking=[guess])
    await fuzzy.annotate("давай напешем исторею", annotations)
    assert (annotations.intent.name, annotations.intent.source) == routed
