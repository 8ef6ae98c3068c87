"""KvCacheLru: a backend's saved KV caches by cache key, at most `slots`, least recently used out first."""

from __future__ import annotations

import logging
from typing import TypeVar

from cachetools import LRUCache

log = logging.getLogger(__name__)
V = TypeVar("V")


class KvCacheLru(LRUCache[str, V]):
    """Saved KV caches (tens of MB each) by cache key, e.g. a story: storing one past `slots` evicts
    the least recently used, and a debug line names it, so a story whose cache keeps missing can be
    told from one whose cache was never kept."""

    def __init__(self, slots: int, model: str) -> None:
        super().__init__(maxsize=slots)
        self.model = model

    def popitem(self) -> tuple[str, V]:
        key, value = super().popitem()
        log.debug("kv cache evicted model=%s key=%s", self.model, key)
        return key, value
