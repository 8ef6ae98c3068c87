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
from bot.nlu.encoders import Encoder, fused_parts, load_encoder
from bot.nlu.scoring import IntentScorer

log = logging.getLogger(__name__)

# Score at which confidence is 0.5, per encoder, calibrated on CLINC150 val + oos_val
# (10 examples per intent; `tandem nlu eval` prints the value for other data).
DEFAULT_CENTERS = {"minilm": 0.25, "use": 0.25, "e5": 0.04, "minilm+e5": 0.18}
ADAPTED_CENTER = 0.33  # with an adapter trained without validation data (CLINC150 val, 10-shot, in-scope acc >= 90%)
# ... per encoder where it differs: e5 on the shipped catalogue, calibrated on the Russian val split of
# evals/nlu/ru_catalogue.json (best in-scope accuracy + oos recall: 92.1% / 100%).
ADAPTED_CENTERS = {"e5": 0.28, "minilm+e5": 0.37}  # the fused one on CLINC150 val, as ADAPTED_CENTER
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
             encoder: Encoder | None = None, train_missing: bool = False) -> IntentModel:
        """Load the configured encoder (or a fine-tuned copy) and embed the catalogue, via the cache.

        With `train_missing`, an adapter that `tandem nlu train` has not made for this encoder and
        catalogue is trained now on the catalogue (about a second for the shipped one) and saved.
        """
        center = config.similarity_center
        if encoder is None:
            spec, meta = _trained_spec(config, catalogue, data_dir)
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
            path = IntentAdapter.path(data_dir, encoder.model_id, fingerprint)
            adapter = IntentAdapter.load(path)
            if adapter is None and train_missing:
                adapter = _train_missing_adapter(catalogue, vectors, config, path)
            if adapter is not None and config.similarity_center is None:
                center = adapter.center if adapter.center is not None else ADAPTED_CENTERS.get(config.encoder,
                                                                                               ADAPTED_CENTER)
        return cls(catalogue, encoder, vectors, config, float(center), adapter)

    def rank(self, vector: np.ndarray, limit: int = 5) -> list[tuple[str, float, float]]:
        """Rank intents for one raw encoder vector (the adapter is applied here)."""
        if self.adapter is not None:
            vector = self.adapter.transform(np.atleast_2d(vector))
        return self.scorer.rank(vector, limit)

    def scores(self, texts: list[str]) -> np.ndarray:
        return self.scorer.scores(self.embed(texts))


def _trained_spec(config: NluConfig, catalogue: IntentCatalogue, data_dir: Path | None) -> tuple[str, dict | None]:
    """The encoder setting with each torch encoder replaced by the copy `tandem nlu train --method encoder`
    fine-tuned (in a fused "minilm+e5" too), and that copy's meta when the setting is that one encoder."""
    parts = fused_parts(config.encoder) or [config.encoder]
    if not config.use_trained or data_dir is None:
        return config.encoder, None
    resolved, metas = [], []
    for part in parts:
        meta = read_trained_meta(trained_dir(data_dir, part)) if part not in ("use", "e5") else None
        if meta is not None:
            if meta.get("fingerprint") != catalogue.fingerprint():
                log.warning("fine-tuned encoder %s was trained on another catalogue; run `tandem nlu train` again",
                            trained_dir(data_dir, part))
            part = str(trained_dir(data_dir, part))
        resolved.append(part)
        metas.append(meta)
    return "+".join(resolved), metas[0] if len(parts) == 1 else None


def _train_missing_adapter(catalogue: IntentCatalogue, vectors: np.ndarray, config: NluConfig,
                           path: Path) -> IntentAdapter | None:
    from bot.nlu.adapter import train_adapter

    _, owners, _ = catalogue_texts(catalogue)
    try:
        adapter = train_adapter(vectors, np.array(owners), catalogue.names, threads=config.torch_threads)
    except ModelError as exc:
        log.warning("no adapter for encoder %s: %s", config.encoder, exc)
        return None
    adapter.save(path)
    log.info("trained adapter encoder=%s texts=%d s=%s path=%s", config.encoder, len(owners),
             adapter.stats.get("seconds"), path)
    return adapter


class EncoderRoute:
    """One encoder's IntentModel behind its own EncodeBatcher (worker thread), loaded once on first use.

    The load is a task of its own: a turn that times out while waiting for it does not throw the
    work away, and the next message finds the model ready.
    """

    def __init__(self, catalogue: IntentCatalogue, config: NluConfig, data_dir: Path | None,
                 encoder_factory: Callable[[str], Encoder] | None = None, train_missing: bool = False) -> None:
        self.catalogue = catalogue
        self.config = config
        self.data_dir = data_dir
        self.train_missing = train_missing
        self._encoder_factory = encoder_factory
        self.model: IntentModel | None = None
        self.batcher = EncodeBatcher(self._encode, config.batch_wait_ms, config.max_batch_size)
        self._loading: asyncio.Future[IntentModel] | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.model is None:
            raise ModelError("intent encoder used before it was loaded")
        return self.model.encoder.encode(texts)

    def _load(self) -> IntentModel:
        started = time.perf_counter()
        encoder = self._encoder_factory(self.config.encoder) if self._encoder_factory else None
        model = IntentModel.load(self.catalogue, self.config, self.data_dir, encoder, self.train_missing)
        log.info("intent model ready encoder=%s s=%.1f", self.config.encoder, time.perf_counter() - started)
        return model

    async def start(self) -> IntentModel:
        if self.model is None:
            if self._loading is None:
                self._loading = asyncio.ensure_future(self.batcher.run(self._load))
            try:
                self.model = await asyncio.shield(self._loading)
            except Exception:
                self._loading = None  # let a later message try again
                raise
        return self.model

    async def rank(self, text: str) -> list[tuple[str, float, float]]:
        model = await self.start()
        return model.rank(await self.batcher.encode(text))

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        await self.batcher.close()


class EmbeddingIntentClassifier:
    """Annotator: ranks intents by similarity; sets the intent only above `intent_threshold`.

    A message goes to the encoder of its language (`encoders_by_language`, from the language
    annotator's `annotations.language`) or else to `encoder`: one route (model + batcher) per
    distinct encoder, each loaded on first use. Call `await start()` at start-up to load the
    default encoder in its worker thread (otherwise the first message does it); `await close()`
    stops the workers. `encoder_factory(spec)` replaces loading an encoder by name (tests).
    """

    name = "embedding"

    def __init__(self, catalogue: IntentCatalogue, config: NluConfig, data_dir: Path | None,
                 encoder_factory: Callable[[str], Encoder] | None = None) -> None:
        self.catalogue = catalogue
        self.config = config
        self.data_dir = data_dir
        self.default = EncoderRoute(catalogue, config, data_dir, encoder_factory)
        routes = {config.encoder: self.default}
        self.by_language: dict[str, EncoderRoute] = {}
        for language, spec in config.encoders_by_language.items():
            if spec not in routes:
                # The global center is calibrated for `encoder`; another encoder takes its own default.
                # Its adapter is trained on first load when missing: frozen e5 ranks Russian right
                # 80% of the time on evals/nlu/ru_catalogue.json's val split, 93-94% with the adapter.
                routes[spec] = EncoderRoute(catalogue, config.model_copy(
                    update={"encoder": spec, "similarity_center": None, "encoders_by_language": {}}),
                    data_dir, encoder_factory, train_missing=True)
            self.by_language[language] = routes[spec]
        self.routes = list(routes.values())

    @property
    def model(self) -> IntentModel | None:
        """The default encoder's model (None until loaded)."""
        return self.default.model

    def route(self, language: str | None) -> EncoderRoute:
        return self.by_language.get(language, self.default) if language else self.default

    def _sure(self, ranked: list[tuple[str, float, float]]) -> bool:
        """Sure of an intent: the best one reaches the threshold and is not the noise intent."""
        return bool(ranked) and ranked[0][1] >= self.config.intent_threshold and ranked[0][0] != self.config.noise_intent

    async def start(self) -> None:
        await self.default.start()

    async def warm_up(self) -> None:
        """Load every language's encoder too (`tandem run` does it in the background once it
        listens); one that cannot load is logged and left to load on its first message."""
        for route in self.routes:
            try:
                await route.start()
            except Exception as exc:
                log.warning("intent encoder %s did not load ahead of its first message: %s: %s",
                            route.config.encoder, type(exc).__name__, exc)

    async def close(self) -> None:
        for route in self.routes:
            await route.close()

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.intent is not None or not text.strip():
            return
        route = self.route(annotations.language)
        ranked = await route.rank(text)
        if route is not self.default and not self._sure(ranked):
            # The default encoder second: MiniLM is rarely sure of Russian, but right when it is
            # (5 of 5 on evals/nlu/ru_catalogue.json), and it reads typos ("превет") that e5 does not.
            second = await self.default.rank(text)
            if self._sure(second):
                ranked = second
        ranking = [IntentGuess(name, conf, self.name) for name, conf, _ in ranked]
        annotations.ranking.extend(ranking)
        if self._sure(ranked):
            annotations.intent = ranking[0]
