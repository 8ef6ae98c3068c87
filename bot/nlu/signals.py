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
from bot.nlu import profanity

log = logging.getLogger(__name__)

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
_LETTER = re.compile(r"[^\W\d_]")
# What says nothing about the language a person writes in: bot commands ("/start", "/help@TandemBot"),
# links, e-mail addresses and @mentions.
_NOT_PROSE = re.compile(r"(?<!\S)/[A-Za-z0-9_]+(?:@\w+)?|https?://\S+|www\.\S+|\S+@\S+\.\S+|(?<!\S)@\w+")
# Latin-script text shorter than this ("ok", "lol", "hi there") is written by speakers of any language
# with a Latin keyboard at hand, so it tells nothing: the client's or conversation's language decides.
MIN_LATIN_WORDS = 3


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
    """Sets `annotations.language` to one of `languages`, or leaves it None when the message cannot tell.

    Script decides clear cases without a model (Cyrillic is Russian, Latin English, for en and ru);
    mixed text goes to py3langid. A message with no prose in it (a command, digits, emoji, a link) or
    only a word or two of Latin script ("ok", "/start", "thx!") is ambiguous: None lets the
    dispatcher fall back on the conversation's or the client's language (a Telegram user's
    `language_code`, the browser's), instead of answering a Russian speaker's "ok" in English.
    """

    name = "language"
    package = "py3langid"

    def __init__(self, languages: tuple[str, ...] = ("en", "ru"), default: str = "en") -> None:
        super().__init__()
        self.languages = tuple(languages)
        # What the model's answer falls back to when it names no configured language.
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

    @staticmethod
    def prose(text: str) -> str:
        """The words of `text` that a language can be told from: commands, links and mentions removed."""
        return _NOT_PROSE.sub(" ", text).strip()

    @staticmethod
    def too_short_to_tell(prose: str) -> bool:
        """Nothing in a language (no letters), or Latin script only, in fewer than MIN_LATIN_WORDS words."""
        words = [word for word in prose.split() if _LETTER.search(word)]
        if not words:
            return True
        return not _CYRILLIC.search(prose) and len(words) < MIN_LATIN_WORDS

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.language is not None:
            return
        prose = self.prose(text)
        if self.too_short_to_tell(prose):
            return  # None: the dispatcher's earlier guesses decide
        language = self.by_script(prose)
        if language is None:
            await self.start()
            language, _ = await asyncio.to_thread(self._model.classify, prose)
        annotations.language = language if language in self.languages else self.default


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
        # One classifier per process, shared with the output safety check (skills/safety.py).
        return profanity.shared_classifier()

    def score(self, text: str) -> dict[str, Any]:
        probability = self._model.probability(text)
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
