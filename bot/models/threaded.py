"""Runs one blocking generation in a worker thread and streams its pieces into asyncio."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

from bot.core.errors import ModelError, ModelTimeout
from bot.models.base import StopFilter

log = logging.getLogger(__name__)

_PIECE, _DONE, _ERROR = 0, 1, 2


class GenerationCancelled(Exception):
    """Raised inside the worker by `emit` once the consumer has gone; unwinds the backend loop."""


class GenerationFinished(Exception):
    """Raised inside the worker by `emit` when a stop string was reached."""


class WorkerControl:
    """What the blocking generation function gets: `emit(piece)` and a cancellation flag.

    `emit` raises GenerationCancelled when the consumer closed the stream or timed out,
    and GenerationFinished when a stop string completed, so a backend loop needs no
    checks of its own; backends whose loop lives in a library (transformers) also poll
    `cancelled` from a stopping criterion.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stops: tuple[str, ...]) -> None:
        self._loop = loop
        self._queue = queue
        self._stop_filter = StopFilter(stops)
        self.cancelled = threading.Event()
        self.pieces = 0

    def post(self, kind: int, value: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:
            # The loop closed while the worker ran (shut-down); nobody is listening any more.
            self.cancelled.set()

    def emit(self, piece: str) -> None:
        if self.cancelled.is_set():
            raise GenerationCancelled
        text = self._stop_filter.feed(piece)
        if text:
            self.pieces += 1
            self.post(_PIECE, text)
        if self._stop_filter.stopped:
            raise GenerationFinished

    def finish(self) -> None:
        tail = self._stop_filter.flush()
        if tail:
            self.post(_PIECE, tail)


class WorkerSet:
    """The worker threads of one model, so `close()` can stop them and wait: a thread still
    inside llama.cpp or torch when the interpreter exits aborts the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[threading.Thread, WorkerControl] = {}

    def add(self, thread: threading.Thread, control: WorkerControl) -> None:
        with self._lock:
            self._running[thread] = control

    def discard(self, thread: threading.Thread) -> None:
        with self._lock:
            self._running.pop(thread, None)

    def __len__(self) -> int:
        return len(self._running)

    def stop_all(self, timeout_s: float = 10.0) -> bool:
        """Cancel every running generation and wait for the threads; False if one hangs."""
        with self._lock:
            running = list(self._running.items())
        for _, control in running:
            control.cancelled.set()
        deadline = time.monotonic() + timeout_s
        for thread, _ in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t, _ in running)


async def stream_in_worker(
    work: Callable[[WorkerControl], None],
    *,
    slots: asyncio.Semaphore,
    timeout_s: float,
    stops: tuple[str, ...],
    label: str,
    on_release: Callable[[], None] | None = None,
    workers: WorkerSet | None = None,
) -> AsyncIterator[str]:
    """Run `work(control)` in a new thread, holding one of `slots` until the thread ends.

    The timeout covers waiting for a slot and the whole generation. Pieces are yielded as
    they come; a timeout or an error in `work` is raised after the pieces made before it.
    Closing or cancelling the iterator sets `control.cancelled`, which stops the worker at
    its next token. The slot is released by the worker thread itself when it really ends,
    so a cancelled generation never overlaps the next one on the same model.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            await slots.acquire()
    except TimeoutError:
        raise ModelTimeout(f"{label}: no free generation slot within {timeout_s:g} s") from None

    queue: asyncio.Queue = asyncio.Queue()
    control = WorkerControl(loop, queue, stops)

    def release() -> None:
        try:
            loop.call_soon_threadsafe(slots.release)
        except RuntimeError:
            pass  # loop already closed: the semaphore dies with it

    def run() -> None:
        started = time.perf_counter()
        try:
            work(control)
            control.finish()
            control.post(_DONE, None)
        except GenerationFinished:
            control.post(_DONE, None)
        except GenerationCancelled:
            log.debug("generation cancelled model=%s after_pieces=%d", label, control.pieces)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who re-raises it
            control.post(_ERROR, exc)
        finally:
            if on_release is not None:
                on_release()
            if workers is not None:
                workers.discard(threading.current_thread())
            release()
            log.debug("worker done model=%s pieces=%d s=%.3f", label, control.pieces, time.perf_counter() - started)

    thread = threading.Thread(target=run, name=f"lm-{label}", daemon=True)
    if workers is not None:
        workers.add(thread, control)
    try:
        thread.start()
    except BaseException:
        if workers is not None:
            workers.discard(thread)
        slots.release()
        raise
    try:
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    kind, value = await queue.get()
            except TimeoutError:
                raise ModelTimeout(f"{label}: generation took longer than {timeout_s:g} s") from None
            if kind == _PIECE:
                yield value
            elif kind == _DONE:
                return
            else:
                if isinstance(value, ModelError):
                    raise value
                raise ModelError(f"{label}: generation failed: {value}") from value
    finally:
        control.cancelled.set()
