"""OutputSafety: decides whether a generated reply is fit to show (a word list, plus the
alt-profanity-check classifier when it is installed, shared with the annotators: bot/nlu/profanity.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from bot.core.errors import ConfigError, ModelUnavailable
from bot.nlu import profanity

WORDS_FILE = Path(__file__).with_name("unsafe_words.yaml")


class OutputSafety:
    """`await is_unsafe(text)`: True when the text holds a listed word or phrase, or when the
    classifier's probability of offensive language reaches `threshold` (it over-reacts to
    enthusiastic swearing, hence a high default; it reads English only). The classifier loads
    on the first check that needs it, in a thread, once per process."""

    def __init__(self, words: Mapping[str, Sequence[str]] | None = None, *, use_classifier: bool = True,
                 threshold: float = 0.85) -> None:
        words = load_words(WORDS_FILE) if words is None else words
        stems = sorted({w.strip().lower() for group in words.values() for w in group if w.strip()}, key=len)
        self._pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(s) for s in stems) + ")", re.IGNORECASE) \
            if stems else None
        self.threshold = threshold
        self._use_classifier = use_classifier

    @property
    def has_classifier(self) -> bool:
        """The classifier takes part: asked for, installed, and not failed to load."""
        return self._use_classifier and profanity.usable()

    def listed(self, text: str) -> bool:
        return bool(self._pattern and self._pattern.search(text))

    async def is_unsafe(self, text: str) -> bool:
        if self.listed(text):
            return True
        if not self.has_classifier or not text.strip():
            return False
        try:
            classifier = await profanity.load_shared()
        except ModelUnavailable:
            return False  # logged once by the loader: the word list alone decides
        # scikit-learn work is blocking; keep it off the event loop.
        probability = await asyncio.to_thread(classifier.probability, text)
        return probability >= self.threshold


def load_words(path: Path) -> dict[str, list[str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the unsafe word list: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of language -> list of words")
    return {str(k): [str(w) for w in v] for k, v in data.items()}
