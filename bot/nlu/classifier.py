"""The embedding intent classifier: catalogue texts embedded once (cached), queries batched, out-of-scope by threshold.

`IntentModel` is the synchronous core (encoder + scorer) that evaluation uses directly;
`EmbeddingIntentClassifier` is the Annotator that wraps it behind an EncodeBatcher so that
concurrent conversations share forward passes and the event loop never runs the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bot.core.annotations import Annotations, IntentGuess
from bot.core.errors import ModelError
from bot.nlu.adapter import IntentAdapter
from bot.nlu.batcher import EncodeBatcher
from bot.nlu.cache import EmbeddingCache
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig
from bot.nlu.encoders import Encoder, load_encoder
from bot.nlu.scoring import IntentScorer

log = logging.getLogger(__name__)

# Score at which confidence is 0.5, per encoder, calibrated on CLINC150 val + oos_val
# (10 examples per intent; `tandem nlu eval` prints the value for other data).
DEFAULT_CENTERS = {"minilm": 0.25, "use": 0.25, "e5": 0.04}
ADAPTED_CENTER = 0.33  # with an adapter trained without validation data (CLINC150 val, 10-shot, in-scope acc >= 90%)
TRAINED_META = "tandem_nlu.json"


def catalogue_texts(catalogue: IntentCatalogue) -> tuple[list[str], list[int], list[bool]]:
    """Every description and example of every language: texts, owning intent index, is-description.

    An intent with no description at all is described by its name ("book_flight" -> "book flight").
    """
    texts: list[str] = []
    owners: list[int] = []
    is_description: list[bool] = []
    for index, intent in enumerate(catalogue):
        descriptions = intent.texts("descriptions") or [intent.name.replace("_", " ")]
        for text in descriptions:
            texts.append(text)
            owners.append(index)
            is_description.append(True)
        for text in intent.texts("examples"):
            texts.append(text)
            owners.append(index)
            is_description.append(False)
    return texts, owners, is_description


def trained_dir(data_dir: Path, encoder: str) -> Path:
    """Where `tandem nlu train` keeps the fine-tuned copy of a torch encoder."""
    key = "minilm" if encoder == "minilm" else Path(encoder).name
    return data_dir / "nlu" / "trained" / key


def read_trained_meta(folder: Path) -> dict | None:
    path = folder / TRAINED_META
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


class IntentModel:
    """An encoder plus the scorer over the catalogue's embedded texts."""

    def __init__(self, catalogue: IntentCatalogue, encoder: Encoder, vectors: np.ndarray, config: NluConfig,
                 center: float, adapter: IntentAdapter | None = None) -> None:
        texts, owners, is_description = catalogue_texts(catalogue)
        self.catalogue = catalogue
        self.encoder = encoder
        self.texts = texts
        self.raw_vectors = vectors  # before the adapter, what `tandem nlu train` learns from
        self.adapter = adapter
        if adapter is not None and adapter.intents != catalogue.names:
            log.warning("adapter was trained for other intents; ignoring it")
            self.adapter = adapter = None
        self.scorer = IntentScorer(
            catalogue.names, adapter.transform(vectors) if adapter else vectors, np.array(owners),
            np.array(is_description), description_weight=config.description_weight, top_k=config.top_k,
            center=center, scale=config.temperature,
            prototypes=adapter.prototypes if adapter else None, prototype_weight=config.prototype_weight,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """Query vectors as the scorer sees them (through the adapter, if any)."""
        vectors = self.encoder.encode(texts)
        return self.adapter.transform(vectors) if self.adapter is not None else vectors

    def adapter_path(self, data_dir: Path) -> Path:
        return IntentAdapter.path(data_dir, self.encoder.model_id, self.catalogue.fingerprint())

    @classmethod
    def load(cls, catalogue: IntentCatalogue, config: NluConfig, data_dir: Path | None = None,
             encoder: Encoder | None = None) -> IntentModel:
        """Load the configured encoder (or a fine-tuned copy) and embed the catalogue, via the cache."""
        center = config.similarity_center
        if encoder is None:
            spec = config.encoder
            meta = None
            if config.use_trained and data_dir is not None and config.encoder not in ("use", "e5"):
                folder = trained_dir(data_dir, config.encoder)
                meta = read_trained_meta(folder)
                if meta is not None:
                    spec = str(folder)
                    if meta.get("fingerprint") != catalogue.fingerprint():
                        log.warning("fine-tuned encoder %s was trained on another catalogue; "
                                    "run `tandem nlu train` again", folder)
            encoder = load_encoder(spec, config.torch_threads)
            if center is None:
                center = meta.get("center") if meta else DEFAULT_CENTERS.get(config.encoder)
        if center is None:
            center = DEFAULT_CENTERS["minilm"]
        texts, _, _ = catalogue_texts(catalogue)
        cache = EmbeddingCache(data_dir) if data_dir is not None else None
        fingerprint = catalogue.fingerprint()
        vectors = cache.load(encoder.model_id, fingerprint, texts) if cache else None
        if vectors is None:
            started = time.perf_counter()
            vectors = encoder.encode(texts)
            log.info("embedded catalogue texts=%d model=%s s=%.1f", len(texts), encoder.model_id,
                     time.perf_counter() - started)
            if cache is not None:
                cache.store(encoder.model_id, fingerprint, texts, vectors)
        adapter = None
        if config.use_trained and data_dir is not None:
            adapter = IntentAdapter.load(IntentAdapter.path(data_dir, encoder.model_id, fingerprint))
            if adapter is not None and config.similarity_center is None:
                center = adapter.center if adapter.center is not None else ADAPTED_CENTER
        return cls(catalogue, encoder, vectors, config, float(center), adapter)

    def rank(self, vector: np.ndarray, limit: int = 5) -> list[tuple[str, float, float]]:
        """Rank intents for one raw encoder vector (the adapter is applied here)."""
        if self.adapter is not None:
            vector = self.adapter.transform(np.atleast_2d(vector))
        return self.scorer.rank(vector, limit)

    def scores(self, texts: list[str]) -> np.ndarray:
        return self.scorer.scores(self.embed(texts))


class EmbeddingIntentClassifier:
    """Annotator: ranks intents by similarity; sets the intent only above `intent_threshold`.

    Call `await start()` at start-up to load the model in the worker thread (otherwise the
    first message does it); `await close()` stops the worker.
    """

    name = "embedding"

    def __init__(self, catalogue: IntentCatalogue, config: NluConfig, data_dir: Path | None,
                 encoder_factory: Callable[[], Encoder] | None = None) -> None:
        self.catalogue = catalogue
        self.config = config
        self.data_dir = data_dir
        self._encoder_factory = encoder_factory
        self.model: IntentModel | None = None
        self.batcher = EncodeBatcher(self._encode, config.batch_wait_ms, config.max_batch_size)
        self._lock = asyncio.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.model is None:
            raise ModelError("intent encoder used before it was loaded")
        return self.model.encoder.encode(texts)

    def _load(self) -> IntentModel:
        encoder = self._encoder_factory() if self._encoder_factory else None
        return IntentModel.load(self.catalogue, self.config, self.data_dir, encoder)

    async def start(self) -> None:
        async with self._lock:
            if self.model is None:
                self.model = await self.batcher.run(self._load)

    async def close(self) -> None:
        await self.batcher.close()

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.intent is not None or not text.strip():
            return
        if self.model is None:
            await self.start()
        vector = await self.batcher.encode(text)
        ranking = [IntentGuess(name, conf, self.name) for name, conf, _ in self.model.rank(vector)]  # type: ignore[union-attr]
        annotations.ranking.extend(ranking)
        if ranking and ranking[0].confidence >= self.config.intent_threshold:
            annotations.intent = ranking[0]
