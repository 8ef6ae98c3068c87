"""The shared alt-profanity-check classifier: one load per process, used by the annotator and the safety check."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from bot.core.annotations import Annotations
from bot.core.errors import ModelUnavailable
from bot.nlu import profanity
from bot.nlu.signals import OffensiveAnnotator
from skills.safety import OutputSafety

RUDE = "you are a stupid ugly moron and everybody hates you"


@pytest.fixture
def fresh(monkeypatch):
    """The module as in a process that has not loaded the classifier yet; restored afterwards."""
    monkeypatch.setattr(profanity, "_shared", None)
    monkeypatch.setattr(profanity, "_failure", None)
    return monkeypatch


@pytest.fixture
def counted(fresh):
    """Records each classifier built and which one each probability came from; building is slow,
    so that two loads racing each other would both happen without the lock."""
    pytest.importorskip("profanity_check")
    pytest.importorskip("sklearn")
    built: list[profanity.ProfanityClassifier] = []
    used: list[profanity.ProfanityClassifier] = []

    class Counted(profanity.ProfanityClassifier):
        def __init__(self, vectorizer, model) -> None:
            time.sleep(0.2)
            super().__init__(vectorizer, model)
            built.append(self)

        def probabilities(self, texts):
            used.append(self)
            return super().probabilities(texts)

    fresh.setattr(profanity, "ProfanityClassifier", Counted)
    return built, used


async def test_annotator_and_output_safety_share_one_loaded_model(counted) -> None:
    built, used = counted
    annotator = OffensiveAnnotator(threshold=0.5)
    safety = OutputSafety({})
    annotations = Annotations()
    await annotator.annotate(RUDE, annotations)
    # Both load at the same moment: the second waits for the first instead of loading again.
    rude, unsafe = await asyncio.gather(annotations.value("offensive"), safety.is_unsafe(RUDE))
    assert rude["offensive"] and unsafe
    assert len(built) == 1
    assert used == [built[0], built[0]]
    assert annotator._model is built[0] is profanity.shared_classifier()
    from profanity_check import profanity_check as package

    assert built[0].model is package.model and built[0].vectorizer is package.vectorizer


async def test_the_shared_classifier_scores_as_the_package_does(counted) -> None:
    from profanity_check import predict_prob

    texts = [RUDE, "What a lovely day for a walk in the park.", "go to hell"]
    assert (await profanity.load_shared()).probabilities(texts) == pytest.approx(list(predict_prob(texts)))


def test_threads_asking_at_once_load_it_once(counted) -> None:
    built, _ = counted
    got: list[profanity.ProfanityClassifier] = []
    threads = [threading.Thread(target=lambda: got.append(profanity.shared_classifier())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and got == [built[0]] * 6


async def test_a_failed_load_is_remembered_and_the_word_list_still_decides(fresh) -> None:
    fresh.setitem(sys.modules, "profanity_check", None)  # `import profanity_check` now fails
    with pytest.raises(ModelUnavailable, match="alt-profanity-check"):
        await profanity.load_shared()
    assert not profanity.usable()
    safety = OutputSafety({"en": ["moron"]})
    assert not safety.has_classifier
    assert await safety.is_unsafe(RUDE)  # the word list
    assert not await safety.is_unsafe("you are a stupid ugly fool")
    annotator = OffensiveAnnotator()
    with pytest.raises(ModelUnavailable):
        await annotator.start()
