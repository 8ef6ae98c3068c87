"""NliIntentClassifier: zero-shot intents from a local NLI (MNLI-style) model via transformers' zero-shot pipeline.

No NLI model ships on PyPI, so this backend serves users who have one on disk
(`[nlu] backend = "nli"`, `nli_model = "/path/to/folder"`). Each intent is one candidate
label, phrased by its first English description (or its name); the pipeline scores
"premise = message, hypothesis = template.format(label)" for every intent, so it costs one
forward pass per intent and message: fine for a few dozen intents, slow for hundreds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.core.annotations import Annotations, IntentGuess
from bot.core.errors import ModelUnavailable
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig

log = logging.getLogger(__name__)


class NliIntentClassifier:
    """Annotator: ranks intents by entailment probability; sets the intent above `intent_threshold`."""

    name = "nli"

    def __init__(self, catalogue: IntentCatalogue, config: NluConfig) -> None:
        if not config.nli_model:
            raise ModelUnavailable("backend 'nli' needs `nli_model`, a local NLI model folder")
        self.config = config
        self.labels: dict[str, str] = {}
        for intent in catalogue:
            descriptions = intent.texts("descriptions", "en") or intent.texts("descriptions")
            self.labels[descriptions[0] if descriptions else intent.name.replace("_", " ")] = intent.name
        self._pipeline: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-nli")
        self._lock = asyncio.Lock()

    def load(self) -> Any:
        """Build the pipeline (blocking: run in a worker thread)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from transformers import pipeline
        except ImportError as exc:
            raise ModelUnavailable("backend 'nli' needs transformers and torch (pip install 'tandem[nlu]')") from exc
        torch.set_num_threads(self.config.torch_threads)
        self._pipeline = pipeline("zero-shot-classification", model=self.config.nli_model,
                                  tokenizer=self.config.nli_model, device="cpu")
        return self._pipeline

    def classify(self, text: str) -> list[tuple[str, float]]:
        """(intent, probability) for every intent, best first (blocking)."""
        if self._pipeline is None:
            self.load()
        result = self._pipeline(text, candidate_labels=list(self.labels),
                                hypothesis_template=self.config.nli_hypothesis, multi_label=False)
        return [(self.labels[label], float(score)) for label, score in zip(result["labels"], result["scores"], strict=True)]

    async def start(self) -> None:
        async with self._lock:
            if self._pipeline is None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    async def close(self) -> None:
        self._executor.shutdown(wait=False)

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.intent is not None or not text.strip():
            return
        await self.start()
        ranked = await asyncio.get_running_loop().run_in_executor(self._executor, self.classify, text)
        guesses = [IntentGuess(name, score, self.name) for name, score in ranked[:5]]
        annotations.ranking.extend(guesses)
        if guesses and guesses[0].confidence >= self.config.intent_threshold and \
                guesses[0].name != self.config.noise_intent:
            annotations.intent = guesses[0]
