"""EmbeddingIntentClassifier: routes by similarity, refuses out-of-scope text, caches catalogue embeddings."""

from __future__ import annotations

import asyncio

import numpy as np

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import Intent, IntentCatalogue
from bot.nlu.classifier import EmbeddingIntentClassifier, IntentModel, catalogue_texts
from bot.nlu.config import NluConfig

CONFIG = NluConfig(similarity_center=0.15, temperature=0.05, batch_wait_ms=5)


async def annotate(classifier, text: str) -> Annotations:
    annotations = Annotations()
    await classifier.annotate(text, annotations)
    return annotations


async def test_routes_a_paraphrase_to_its_intent(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda: fake_encoder)
    result = await annotate(classifier, "what will the weather be tomorrow")
    await classifier.close()
    assert result.intent_name == "weather"
    assert result.intent.source == "embedding" and result.intent.confidence >= 0.5
    assert [g.name for g in result.ranking][0] == "weather"


async def test_zero_shot_intent_is_found_by_its_description(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda: fake_encoder)
    result = await annotate(classifier, "play a song")
    await classifier.close()
    assert result.intent_name == "music"


async def test_unrelated_text_is_out_of_scope_but_ranked(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda: fake_encoder)
    result = await annotate(classifier, "quantum chromodynamics lecture notes")
    await classifier.close()
    assert result.intent is None
    assert len(result.ranking) == 3 and all(g.confidence < 0.5 for g in result.ranking)


async def test_intent_set_by_rules_is_left_alone(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda: fake_encoder)
    annotations = Annotations(intent=IntentGuess("story", 1.0, "rules"))
    await classifier.annotate("what is the weather today", annotations)
    await classifier.close()
    assert annotations.intent_name == "story" and annotations.ranking == []


async def test_concurrent_turns_share_batches(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG.model_copy(update={"batch_wait_ms": 30}), tmp_path,
                                           lambda: fake_encoder)
    await classifier.start()
    before = len(fake_encoder.calls)
    results = await asyncio.gather(*(annotate(classifier, f"weather forecast {i}") for i in range(16)))
    await classifier.close()
    assert all(r.intent_name == "weather" for r in results)
    assert len(fake_encoder.calls) - before == 1


def test_catalogue_embeddings_are_cached_until_the_catalogue_changes(catalogue, fake_encoder, tmp_path):
    IntentModel.load(catalogue, CONFIG, tmp_path, fake_encoder)
    IntentModel.load(catalogue, CONFIG, tmp_path, fake_encoder)
    assert len(fake_encoder.calls) == 1  # second load read the cache
    changed = IntentCatalogue([*catalogue, Intent(name="joke", descriptions={"en": ["tell a joke"]})])
    IntentModel.load(changed, CONFIG, tmp_path, fake_encoder)
    assert len(fake_encoder.calls) == 2


def test_catalogue_texts_cover_every_language_and_name_only_intents():
    catalogue = IntentCatalogue([
        Intent(name="book_flight"),
        Intent(name="greet", descriptions={"en": ["greets"], "ru": ["здоровается"]}, examples={"ru": ["привет"]}),
    ])
    texts, owners, is_description = catalogue_texts(catalogue)
    assert texts == ["book flight", "greets", "здоровается", "привет"]
    assert owners == [0, 1, 1, 1] and is_description == [True, True, True, False]


def test_model_scores_many_texts_at_once(catalogue, fake_encoder):
    model = IntentModel.load(catalogue, CONFIG, None, fake_encoder)
    scores = model.scores(["weather today", "write a story"])
    assert scores.shape == (2, 3)
    assert list(np.argmax(scores, axis=1)) == [0, 1]
