"""EncodeBatcher: concurrent requests share one model call in a worker thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from bot.nlu.batcher import EncodeBatcher


class RecordingEncoder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


async def test_concurrent_requests_are_gathered_into_one_batch_off_the_loop():
    encoder = RecordingEncoder()
    batcher = EncodeBatcher(encoder, wait_ms=20, max_batch=64)
    texts = [f"message {'x' * i}" for i in range(32)]
    results = await asyncio.gather(*(batcher.encode(t) for t in texts))
    await batcher.close()
    assert len(encoder.batches) == 1 and len(encoder.batches[0]) == 32
    assert [r[0] for r in results] == [float(len(t)) for t in texts]  # each caller gets its own row
    assert encoder.threads and threading.current_thread().name not in encoder.threads


async def test_max_batch_splits_large_bursts():
    encoder = RecordingEncoder()
    batcher = EncodeBatcher(encoder, wait_ms=50, max_batch=8)
    await asyncio.gather(*(batcher.encode(str(i)) for i in range(20)))
    await batcher.close()
    assert [len(b) for b in encoder.batches] == [8, 8, 4]


async def test_model_error_reaches_every_waiting_caller():
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model crashed")

    batcher = EncodeBatcher(broken, wait_ms=5)
    results = await asyncio.gather(batcher.encode("a"), batcher.encode("b"), return_exceptions=True)
    await batcher.close()
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_closed_batcher_refuses_work():
    batcher = EncodeBatcher(RecordingEncoder())
    await batcher.close()
    with pytest.raises(RuntimeError):
        await batcher.encode("late")
