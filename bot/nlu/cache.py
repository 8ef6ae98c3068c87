"""The on-disk cache of catalogue embeddings, keyed by catalogue fingerprint and encoder model id.

A file `<data_dir>/nlu/embeddings/<model>-<fingerprint>.npz` holds the vectors of every
catalogue text; a changed catalogue or encoder has another key, so stale files are never
read (older files of the same model are removed when a new one is written).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class EmbeddingCache:
    """Loads and stores one array of text embeddings per (model id, catalogue fingerprint).

    Besides the files, the process keeps what it loaded or stored in memory: a second bot
    in the same process with another data folder (tests, say) needs no re-encoding.
    """

    _memory: dict[tuple[str, str], tuple[list[str], np.ndarray]] = {}

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "nlu" / "embeddings"

    @staticmethod
    def _model_key(model_id: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)[:48]
        return f"{safe}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"

    def path(self, model_id: str, fingerprint: str) -> Path:
        return self.folder / f"{self._model_key(model_id)}-{fingerprint}.npz"

    def load(self, model_id: str, fingerprint: str, texts: list[str]) -> np.ndarray | None:
        """The cached vectors of `texts`, or None when absent, unreadable or made for other texts."""
        remembered = self._memory.get((model_id, fingerprint))
        path = self.path(model_id, fingerprint)
        if remembered is not None and remembered[0] == texts:
            if not path.exists():
                # Another data folder of this process computed them: this folder gets its file
                # too, so its next process starts without encoding the catalogue again.
                try:
                    self.store(model_id, fingerprint, texts, remembered[1])
                except OSError as exc:
                    log.warning("cannot write embedding cache %s: %s", path, exc)
            return remembered[1]
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                cached_texts = [str(t) for t in data["texts"]]
                vectors = np.array(data["vectors"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable embedding cache %s: %s", path, exc)
            return None
        if cached_texts != texts or len(vectors) != len(texts):
            return None
        self._memory[(model_id, fingerprint)] = (list(texts), vectors)
        return vectors

    def store(self, model_id: str, fingerprint: str, texts: list[str], vectors: np.ndarray,
              replace_older: bool = True) -> Path:
        """Write atomically (temp file + rename); unless told otherwise, drop this model's older files."""
        self._memory[(model_id, fingerprint)] = (list(texts), np.asarray(vectors, dtype=np.float32))
        path = self.path(model_id, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, texts=np.array(texts, dtype=str), vectors=np.asarray(vectors, dtype=np.float32))
        tmp.replace(path)
        if replace_older:
            for old in path.parent.glob(f"{self._model_key(model_id)}-*.npz"):
                if old != path and "-texts-" not in old.name:
                    old.unlink(missing_ok=True)
        return path
