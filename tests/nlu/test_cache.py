"""EmbeddingCache: keyed by model and catalogue fingerprint, stale files removed."""

from __future__ import annotations

import numpy as np

from bot.nlu.cache import EmbeddingCache


def test_store_then_load_round_trips(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = np.eye(2, dtype=np.float32)
    cache.store("model/a", "fp1", ["x", "y"], vectors)
    assert np.array_equal(cache.load("model/a", "fp1", ["x", "y"]), vectors)


def test_other_fingerprint_model_or_texts_miss(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("m", "fp1", ["x"], np.ones((1, 2)))
    assert cache.load("m", "fp2", ["x"]) is None
    assert cache.load("other", "fp1", ["x"]) is None
    assert cache.load("m", "fp1", ["changed"]) is None


def test_new_catalogue_replaces_old_file(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("m", "fp1", ["x"], np.ones((1, 2)))
    cache.store("m", "fp2", ["x"], np.ones((1, 2)))
    assert [p.name.endswith("fp2.npz") for p in cache.folder.iterdir()] == [True]
