"""Annotators for signals other than intent: language (py3langid), sentiment (VADER), offensive language.

Each is a plug-in of the Annotator protocol with optional `start()`; its model loads in a
worker thread on `start()` or the first message (py3langid and alt-profanity-check take
seconds to load), and every call runs off the event loop. A missing package raises
ModelUnavailable from `check()`, so the pipeline can skip the annotator with a warning.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
from typing import Any

from bot.core.annotations import Annotations
from bot.core.errors import ModelUnavailable

log = logging.getLogger(__name__)

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")


class _LazyModel:
    """Holds a model loaded once in a worker thread; subclasses define `_load()` and `package`."""

    name: str
    package: str

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = asyncio.Lock()

    @classmethod
    def check(cls) -> None:
        if importlib.util.find_spec(cls.package) is None:
            raise ModelUnavailable(f"annotator {cls.name!r} needs the package providing `{cls.package}`")

    def _load(self) -> Any:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    async def start(self) -> None:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)

    async def close(self) -> None:
        self._model = None


class LanguageAnnotator(_LazyModel):
    """Sets `annotations.language` to one of `languages`; script decides clear cases without a model."""

    name = "language"
    package = "py3langid"

    def __init__(self, languages: tuple[str, ...] = ("en", "ru"), default: str = "en") -> None:
        super().__init__()
        self.languages = tuple(languages)
        self.default = default if default in self.languages else self.languages[0]

    def _load(self) -> Any:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(self.languages))
        return identifier

    def by_script(self, text: str) -> str | None:
        """Russian for Cyrillic-only text, English for Latin-only text, when those are configured."""
        cyrillic, latin = bool(_CYRILLIC.search(text)), bool(_LATIN.search(text))
        if cyrillic and not latin and "ru" in self.languages:
            return "ru"
        if latin and not cyrillic and self.languages == ("en", "ru"):
            return "en"
        return None

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.language is not None:
            return
        language = self.by_script(text)
        if language is None and text.strip():
            await self.start()
            language, _ = await asyncio.to_thread(self._model.classify, text)
        annotations.language = language or self.default


class SentimentAnnotator(_LazyModel):
    """English sentiment from the VADER lexicon: values['sentiment'] = {label, compound}."""

    name = "sentiment"
    package = "vaderSentiment"

    def _load(self) -> Any:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    def score(self, text: str) -> dict[str, Any]:
        compound = float(self._model.polarity_scores(text)["compound"])
        # VADER's own convention: +-0.05 separates neutral from polar text.
        label = "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
        return {"label": label, "compound": round(compound, 4)}

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.language not in (None, "en") or not text.strip():
            return  # the lexicon is English only; a wrong answer is worse than none
        await self.start()
        annotations.values[self.name] = await asyncio.to_thread(self.score, text)


class OffensiveAnnotator(_LazyModel):
    """English offensive-language probability (alt-profanity-check): values['offensive'] = {offensive, score}."""

    name = "offensive"
    package = "profanity_check"

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold

    def _load(self) -> Any:
        from profanity_check import predict_prob

        return predict_prob

    def score(self, text: str) -> dict[str, Any]:
        probability = float(self._model([text])[0])
        return {"offensive": probability >= self.threshold, "score": round(probability, 4)}

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.language not in (None, "en") or not text.strip():
            return  # blind to other languages

        async def compute() -> dict[str, Any]:
            await self.start()
            return await asyncio.to_thread(self.score, text)

        # Deferred: scikit-learn's calibrated classifier cost ~8 ms of CPU a message (py-spy), and
        # only a skill or graph that asks for annotations.value("offensive") needs it.
        annotations.defer(self.name, compute)
