"""EmbeddingIntentClassifier: routes by similarity, refuses out-of-scope text, caches catalogue embeddings."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import Intent, IntentCatalogue
from bot.nlu.classifier import EmbeddingIntentClassifier, IntentModel, catalogue_texts
from bot.nlu.config import NluConfig
from tests.nlu.conftest import FakeEncoder

CONFIG = NluConfig(similarity_center=0.15, temperature=0.05, batch_wait_ms=5)


async def annotate(classifier, text: str) -> Annotations:
    annotations = Annotations()
    await classifier.annotate(text, annotations)
    return annotations


async def test_routes_a_paraphrase_to_its_intent(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda spec: fake_encoder)
    result = await annotate(classifier, "what will the weather be tomorrow")
    await classifier.close()
    assert result.intent_name == "weather"
    assert result.intent.source == "embedding" and result.intent.confidence >= 0.5
    assert [g.name for g in result.ranking][0] == "weather"


async def test_zero_shot_intent_is_found_by_its_description(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda spec: fake_encoder)
    result = await annotate(classifier, "play a song")
    await classifier.close()
    assert result.intent_name == "music"


async def test_unrelated_text_is_out_of_scope_but_ranked(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda spec: fake_encoder)
    result = await annotate(classifier, "quantum chromodynamics lecture notes")
    await classifier.close()
    assert result.intent is None
    assert len(result.ranking) == 3 and all(g.confidence < 0.5 for g in result.ranking)


async def test_intent_set_by_rules_is_left_alone(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, lambda spec: fake_encoder)
    annotations = Annotations(intent=IntentGuess("story", 1.0, "rules"))
    await classifier.annotate("what is the weather today", annotations)
    await classifier.close()
    assert annotations.intent_name == "story" and annotations.ranking == []


async def test_concurrent_turns_share_batches(catalogue, fake_encoder, tmp_path):
    classifier = EmbeddingIntentClassifier(catalogue, CONFIG.model_copy(update={"batch_wait_ms": 30}), tmp_path,
                                           lambda spec: fake_encoder)
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


class SpecEncoders:
    """One FakeEncoder per encoder setting, recording which settings were loaded."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.encoders: dict[str, FakeEncoder] = {}

    def __call__(self, spec: str) -> FakeEncoder:
        self.loaded.append(spec)
        encoder = self.encoders.setdefault(spec, FakeEncoder())
        encoder.model_id = f"fake-{spec}"
        return encoder


RU_CONFIG = CONFIG.model_copy(update={"encoders_by_language": {"ru": "multi"}})


async def test_a_russian_message_goes_to_the_encoder_of_its_language(catalogue, fake_encoder, tmp_path):
    encoders = SpecEncoders()
    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, encoders)
    russian = await annotate_in(classifier, "what will the weather be tomorrow", "ru")
    english = await annotate_in(classifier, "what will the weather be tomorrow", "en")
    unknown = await annotate_in(classifier, "weather forecast please", None)
    await classifier.close()
    assert russian.intent_name == english.intent_name == unknown.intent_name == "weather"
    queries = {spec: [call for call in e.calls if len(call) == 1] for spec, e in encoders.encoders.items()}
    assert queries["multi"] == [["what will the weather be tomorrow"]]
    assert queries["minilm"] == [["what will the weather be tomorrow"], ["weather forecast please"]]


async def test_the_language_encoder_loads_only_when_a_message_needs_it(catalogue, fake_encoder, tmp_path):
    encoders = SpecEncoders()
    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, encoders)
    await classifier.start()
    await annotate_in(classifier, "weather forecast please", "en")
    assert encoders.loaded == ["minilm"]
    await annotate_in(classifier, "weather forecast please", "ru")
    await annotate_in(classifier, "write a story", "ru")
    await classifier.close()
    assert encoders.loaded == ["minilm", "multi"]  # once, then kept


async def test_warm_up_loads_every_language_encoder_before_its_first_message(catalogue, fake_encoder, tmp_path):
    from bot.core.annotations import warm_up_annotators

    encoders = SpecEncoders()
    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, encoders)
    await classifier.start()
    assert encoders.loaded == ["minilm"]
    await warm_up_annotators([classifier])
    assert encoders.loaded == ["minilm", "multi"]
    await annotate_in(classifier, "weather forecast please", "ru")
    await classifier.close()
    assert encoders.loaded == ["minilm", "multi"]  # the message found it loaded


async def test_an_encoder_that_cannot_load_is_left_for_its_first_message(catalogue, fake_encoder, tmp_path, caplog):
    def failing(spec: str) -> FakeEncoder:
        if spec == "multi":
            raise RuntimeError("no such encoder here")
        return SpecEncoders()(spec)

    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, failing)
    await classifier.warm_up()
    await classifier.close()
    assert "intent encoder multi did not load ahead of its first message" in caplog.text


async def test_a_language_with_the_default_encoder_shares_its_model(catalogue, fake_encoder, tmp_path):
    encoders = SpecEncoders()
    config = CONFIG.model_copy(update={"encoders_by_language": {"ru": "minilm", "de": "multi", "fr": "multi"}})
    classifier = EmbeddingIntentClassifier(catalogue, config, tmp_path, encoders)
    assert len(classifier.routes) == 2 and classifier.route("ru") is classifier.default
    assert classifier.route("de") is classifier.route("fr") is not classifier.default
    assert classifier.route(None) is classifier.default and classifier.route("es") is classifier.default
    await classifier.close()


async def test_the_language_route_trains_its_missing_adapter_once(catalogue, fake_encoder, tmp_path):
    pytest.importorskip("torch")
    encoders = SpecEncoders()
    for _ in range(2):
        classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, encoders)
        result = await annotate_in(classifier, "will it rain tomorrow", "ru")
        await classifier.close()
        assert result.intent_name == "weather"
        assert classifier.route("ru").model.adapter is not None
        assert classifier.default.model is None  # English was never needed
    (saved,) = (tmp_path / "nlu" / "adapters").glob("fake-multi-*.npz")
    assert saved.stat().st_size > 0


async def test_a_turn_that_gives_up_waiting_for_the_load_does_not_waste_it(catalogue, fake_encoder, tmp_path):
    gate = threading.Event()
    loads = []

    def slow(spec: str) -> FakeEncoder:
        loads.append(spec)
        gate.wait(5)
        return fake_encoder

    classifier = EmbeddingIntentClassifier(catalogue, CONFIG, tmp_path, slow)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(annotate(classifier, "weather forecast please"), 0.05)
    gate.set()
    result = await annotate(classifier, "weather forecast please")
    await classifier.close()
    assert result.intent_name == "weather" and loads == ["minilm"]


async def annotate_in(classifier, text: str, language: str | None) -> Annotations:
    annotations = Annotations(language=language)
    await classifier.annotate(text, annotations)
    return annotations


class BlindEncoder(FakeEncoder):
    """Every text the same vector: an encoder that cannot tell this language's texts apart."""

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 256), dtype=np.float32)
        out[:, 0] = 1.0
        return out


async def test_the_default_encoder_answers_when_the_language_encoder_is_unsure(catalogue, fake_encoder, tmp_path):
    blind = BlindEncoder()
    blind.model_id = "blind"
    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path,
                                           lambda spec: blind if spec == "multi" else fake_encoder)
    result = await annotate_in(classifier, "what will the weather be tomorrow", "ru")
    await classifier.close()
    assert result.intent_name == "weather"
    assert [len(c) for c in blind.calls][-1] == 1  # asked first, unsure


async def test_a_sure_language_encoder_is_not_second_guessed(catalogue, fake_encoder, tmp_path):
    encoders = SpecEncoders()
    classifier = EmbeddingIntentClassifier(catalogue, RU_CONFIG, tmp_path, encoders)
    result = await annotate_in(classifier, "what will the weather be tomorrow", "ru")
    await classifier.close()
    assert result.intent_name == "weather" and encoders.loaded == ["multi"]


@pytest.mark.parametrize(("noise_intent", "expected"), [("noise", None), ("", "noise")])
async def test_a_best_guess_of_the_noise_intent_sets_no_intent(catalogue, fake_encoder, tmp_path, noise_intent,
                                                                expected):
    with_noise = IntentCatalogue([*catalogue, Intent(
        name="noise", descriptions={"en": ["made up words"]},
        examples={"en": ["blorp zing", "zing wup", "wup blorp flim"]})])
    config = CONFIG.model_copy(update={"noise_intent": noise_intent})
    classifier = EmbeddingIntentClassifier(with_noise, config, tmp_path, lambda spec: fake_encoder)
    noise = await annotate(classifier, "zing blorp wup")
    weather = await annotate(classifier, "what will the weather be tomorrow")
    await classifier.close()
    assert noise.ranking[0].name == "noise" and noise.ranking[0].confidence >= 0.5
    assert noise.intent_name == expected  # "" turns the rule off: noise is then an intent like any other
    assert weather.intent_name == "weather"
