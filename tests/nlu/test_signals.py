"""Language, sentiment and offensive-language annotators on their shipped models."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations
from bot.nlu.signals import LanguageAnnotator, OffensiveAnnotator, SentimentAnnotator


async def annotate(annotator, text: str, **fields) -> Annotations:
    annotations = Annotations(**fields)
    await annotator.annotate(text, annotations)
    return annotations


async def test_language_by_script_needs_no_model():
    annotator = LanguageAnnotator()
    assert (await annotate(annotator, "давай напишем сказку")).language == "ru"
    assert (await annotate(annotator, "let's write a story")).language == "en"
    assert annotator._model is None


async def test_language_model_decides_mixed_text():
    pytest.importorskip("py3langid")
    annotator = LanguageAnnotator()
    result = await annotate(annotator, "Напиши мне story про драконов и рыцарей, пожалуйста")
    assert result.language == "ru"
    assert annotator._model is not None


@pytest.mark.parametrize("text", ["1234 :)", "👍", "ok", "OK!", "lol", "hi there", "/start", "/help@TandemBot",
                                  "/language ru", "https://example.com/a", "@someone 5", "   "])
async def test_a_message_too_short_or_without_prose_leaves_the_language_to_the_client(text):
    # None: the dispatcher goes on with the conversation's or the client's language (Telegram's
    # language_code, the browser's), so a Russian speaker's "ok" or "/start" is not answered in English.
    annotator = LanguageAnnotator()
    assert (await annotate(annotator, text)).language is None
    assert annotator._model is None


@pytest.mark.parametrize("text, language", [
    ("да", "ru"), ("/story про драконов", "ru"), ("ок, давай", "ru"),
    ("what can you do", "en"), ("I would like to write a story about a dragon", "en"),
    ("/story about a brave little dragon", "en"),
])
async def test_cyrillic_or_a_real_latin_sentence_still_decides(text, language):
    assert (await annotate(LanguageAnnotator(), text)).language == language


async def test_sentiment_labels_english_and_skips_russian():
    pytest.importorskip("vaderSentiment")
    annotator = SentimentAnnotator()
    assert (await annotate(annotator, "I love this story, it is wonderful")).values["sentiment"]["label"] == "positive"
    assert (await annotate(annotator, "this is terrible and I hate it")).values["sentiment"]["label"] == "negative"
    assert "sentiment" not in (await annotate(annotator, "ужасно", language="ru")).values


async def test_offensive_flags_insults_not_friendly_text():
    pytest.importorskip("profanity_check")
    pytest.importorskip("sklearn")
    annotator = OffensiveAnnotator(threshold=0.5)
    rude_annotations = await annotate(annotator, "you are a fucking idiot")
    # Deferred: computed only when asked for, and stored with the turn only then.
    assert "offensive" not in rude_annotations.to_json()
    rude = await rude_annotations.value("offensive")
    kind = await (await annotate(annotator, "have a lovely day, friend")).value("offensive")
    assert rude["offensive"] and not kind["offensive"]
    assert rude["score"] > kind["score"]
    assert rude_annotations.to_json()["offensive"] == rude
    assert await rude_annotations.value("offensive") is rude  # once
