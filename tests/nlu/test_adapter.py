"""IntentAdapter: learned on frozen embeddings, saved per encoder and catalogue, picked up automatically."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu.adapter import IntentAdapter, train_adapter
from bot.nlu.classifier import IntentModel, catalogue_texts
from bot.nlu.config import NluConfig

pytest.importorskip("torch")


def overlapping_clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two intents whose embeddings differ only along one weak direction, drowned in a shared one."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(80, 1)) * 3
    labels = np.repeat([0, 1], 40)
    x = np.concatenate([shared, (labels[:, None] * 2 - 1) * 0.3 + rng.normal(size=(80, 1)) * 0.1,
                        rng.normal(size=(80, 6))], axis=1)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_adapter_learns_to_separate_intents():
    x, y = overlapping_clusters()
    adapter = train_adapter(x, y, ["a", "b"], epochs=100, lr=1e-2, seed=0)
    centroids = np.stack([x[y == c].mean(0) for c in (0, 1)])
    before = (np.argmax(x @ centroids.T, axis=1) == y).mean()
    after = (np.argmax(adapter.transform(x) @ adapter.prototypes.T, axis=1) == y).mean()
    assert after > before and after >= 0.95


def test_adapter_round_trips_and_is_used_automatically(catalogue, fake_encoder, tmp_path):
    config = NluConfig(similarity_center=0.3)
    plain = IntentModel.load(catalogue, config, tmp_path, fake_encoder)
    assert plain.adapter is None
    _, owners, _ = catalogue_texts(catalogue)
    adapter = train_adapter(plain.raw_vectors, np.array(owners), catalogue.names, epochs=5)
    adapter.center = 0.42
    adapter.save(plain.adapter_path(tmp_path))
    loaded = IntentModel.load(catalogue, NluConfig(), tmp_path, fake_encoder)
    assert loaded.adapter is not None
    assert np.allclose(loaded.adapter.weight, adapter.weight)
    assert loaded.scorer.center == pytest.approx(0.42)  # calibrated center travels with the adapter
    assert loaded.scores(["weather today"]).argmax() == 0
    ignored = IntentModel.load(catalogue, NluConfig(use_trained=False), tmp_path, fake_encoder)
    assert ignored.adapter is None


def test_unreadable_adapter_is_ignored(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip")
    assert IntentAdapter.load(path) is None
