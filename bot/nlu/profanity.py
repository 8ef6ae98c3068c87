"""The alt-profanity-check classifier: loaded once per process on first use, shared by every caller.

The offensive-language annotator (bot/nlu/signals.py) and the output safety check
(skills/safety.py) both read it. Loading unpickles a scikit-learn vectorizer and model (about a
second), so it happens in a worker thread (`await load_shared()`), under a lock that makes a
second caller wait for the first load instead of starting its own. A load that fails (the package
missing, or a scikit-learn that cannot read its pickles) is remembered and logged once: later
calls raise ModelUnavailable at once and callers fall back on what they have without it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import Sequence
from typing import Any

from bot.core.errors import ModelUnavailable

log = logging.getLogger(__name__)

PACKAGE = "profanity_check"


class ProfanityClassifier:
    """English offensive-language probability of texts (0..1): alt-profanity-check's linear model
    over its TF-IDF vectorizer. It reads English only; calls block (scikit-learn), so async code runs
    them in a thread."""

    def __init__(self, vectorizer: Any, model: Any) -> None:
        self.vectorizer = vectorizer
        self.model = model

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        # Column 1 is the "offensive" class, as in profanity_check.predict_prob.
        return [float(p) for p in self.model.predict_proba(self.vectorizer.transform(list(texts)))[:, 1]]

    def probability(self, text: str) -> float:
        return self.probabilities([text])[0]


_lock = threading.Lock()
_shared: ProfanityClassifier | None = None
_failure: str | None = None


def usable() -> bool:
    """The package is installed and no load of it has failed (it may not be loaded yet)."""
    return _failure is None and (_shared is not None or importlib.util.find_spec(PACKAGE) is not None)


def shared_classifier() -> ProfanityClassifier:
    """The process's classifier, loading it on the first call (blocking: call it from a thread)."""
    global _shared, _failure
    if _shared is not None:
        return _shared
    with _lock:
        if _shared is None and _failure is None:
            try:
                # Importing the module loads the vectorizer and the model (module globals).
                from profanity_check import profanity_check as package
            except Exception as exc:  # noqa: BLE001 - optional: any failure to load means "without it"
                _failure = f"alt-profanity-check cannot be loaded: {exc!r}"
                log.info("%s; offensive-language checks use the word list only", _failure)
            else:
                _shared = ProfanityClassifier(package.vectorizer, package.model)
                log.info("alt-profanity-check loaded")
    if _shared is None:
        raise ModelUnavailable(_failure or "alt-profanity-check is not loaded")
    return _shared


async def load_shared() -> ProfanityClassifier:
    """`shared_classifier()` without blocking the event loop: at once when it is loaded, else in a thread."""
    if _shared is not None:
        return _shared
    if _failure is not None:
        raise ModelUnavailable(_failure)
    return await asyncio.to_thread(shared_classifier)
