"""KvCacheLru: at most `slots` saved KV caches, the least recently used evicted first and named in the log."""

from __future__ import annotations

import logging

from bot.models.kv_caches import KvCacheLru


def test_the_least_recently_used_cache_is_evicted_and_logged(caplog) -> None:
    caches: KvCacheLru[str] = KvCacheLru(2, "smollm2")
    caches["a"], caches["b"] = "kv-a", "kv-b"
    assert caches.get("a") == "kv-a"  # "a" is now the most recently used
    with caplog.at_level(logging.DEBUG, logger="bot.models.kv_caches"):
        caches["c"] = "kv-c"
    assert sorted(caches) == ["a", "c"]
    assert [r.getMessage() for r in caplog.records] == ["kv cache evicted model=smollm2 key=b"]
    assert caches.pop("a") == "kv-a" and caches.pop("a", None) is None  # taken out for use, as the backends do
