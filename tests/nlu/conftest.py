"""Fixtures of the NLU tests: a deterministic fake encoder and a small catalogue."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from bot.nlu.cache import EmbeddingCache
from bot.nlu.catalogue import Intent, IntentCatalogue, IntentRule


class FakeEncoder:
    """Bag of words hashed into 256 dimensions: texts that share words are similar, others are not."""

    model_id = "fake-bow-256"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    # The process-wide memory of embeddings would answer from an earlier test's encoder.
    EmbeddingCache._memory.clear()
    return FakeEncoder()


@pytest.fixture
def catalogue() -> IntentCatalogue:
    return IntentCatalogue([
        Intent(name="weather", descriptions={"en": ["the user asks about the weather forecast"]},
               examples={"en": ["what is the weather today", "will it rain tomorrow", "weather forecast please"]}),
        Intent(name="story", descriptions={"en": ["the user wants to write a story"]},
               examples={"en": ["let's write a story", "tell me a story about dragons", "write a fairy tale"]},
               rules=(IntentRule(command="/story"),)),
        Intent(name="music", descriptions={"en": ["play some music song"]}),  # zero-shot: description only
    ])
