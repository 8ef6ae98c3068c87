"""EncodeBatcher: gathers encode requests from concurrent conversations into one batch run in a worker thread.

A request waits at most `wait_ms` for company (or until `max_batch` requests are queued),
then the whole batch is encoded by one call in a single worker thread, so the model runs
one forward pass for many conversations and the event loop never runs the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")


class EncodeBatcher:
    """Micro-batches `encode(list[str]) -> (n, d) array` calls; one worker thread owns the model."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], wait_ms: float = 5.0, max_batch: int = 32) -> None:
        self._encode = encode
        self.wait_s = wait_ms / 1000.0
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-encoder")
        self._pending: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # number of model calls made, for tests and metrics
        self.closed = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` in the encoder's worker thread (loading, caching, training)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def encode(self, text: str) -> np.ndarray:
        """The embedding of one text, computed in a batch with whatever else arrives meanwhile."""
        if self.closed:
            raise RuntimeError("encoder batcher is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((text, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            if self.wait_s <= 0:
                self._flush()
            else:
                self._timer = loop.call_later(self.wait_s, self._flush)
        return await future

    async def encode_many(self, texts: list[str]) -> np.ndarray:
        """Embeddings of many texts at once (one worker call, no waiting for company)."""
        return await self.run(self._encode, list(texts))

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:  # more than one batch queued: schedule the rest right away
            self._timer = asyncio.get_running_loop().call_soon(self._flush)  # type: ignore[assignment]
        if batch:
            task = asyncio.create_task(self._run_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        texts = [text for text, _ in batch]
        started = time.perf_counter()
        try:
            vectors = await self.run(self._encode, texts)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        log.debug("encoded batch size=%d ms=%.1f", len(texts), (time.perf_counter() - started) * 1000)
        for row, (_, future) in zip(vectors, batch, strict=True):
            if not future.done():
                future.set_result(row)

    async def close(self) -> None:
        """Finish queued batches, then stop the worker thread."""
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.closed = True
        self._executor.shutdown(wait=False)
