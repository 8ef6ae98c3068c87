"""The worker-thread streaming every local backend uses: order, errors, timeout, cancellation, limits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.core.errors import ModelError, ModelTimeout
from bot.models.threaded import WorkerControl, stream_in_worker


class BlockingWork:
    """A stand-in for a backend's blocking loop: emits `pieces`, sleeping between them."""

    def __init__(self, pieces: list[str], delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.pieces = pieces
        self.delay_s = delay_s
        self.fail_at = fail_at
        self.emitted = 0
        self.ended = threading.Event()
        self.thread: str | None = None

    def __call__(self, control: WorkerControl) -> None:
        self.thread = threading.current_thread().name
        try:
            for index, piece in enumerate(self.pieces):
                if self.fail_at is not None and index == self.fail_at:
                    raise RuntimeError("backend exploded")
                time.sleep(self.delay_s)  # blocking on purpose: must not stall the loop
                control.emit(piece)
                self.emitted += 1
        finally:
            self.ended.set()


def run(work, *, slots=None, timeout_s=5.0, stops=()):
    return stream_in_worker(
        work, slots=slots or asyncio.Semaphore(1), timeout_s=timeout_s, stops=tuple(stops), label="test"
    )


async def test_pieces_arrive_in_order_from_another_thread() -> None:
    work = BlockingWork(["a", "b", "c"])
    assert [p async for p in run(work)] == ["a", "b", "c"]
    assert work.thread != threading.current_thread().name


async def test_error_is_raised_after_the_pieces_made_before_it() -> None:
    got: list[str] = []
    with pytest.raises(ModelError, match="backend exploded"):
        async for piece in run(BlockingWork(["a", "b", "c", "d"], fail_at=2)):
            got.append(piece)
    assert got == ["a", "b"]


async def test_timeout_keeps_partial_output_and_stops_the_worker() -> None:
    work = BlockingWork([f"w{i} " for i in range(100)], delay_s=0.05)
    got: list[str] = []
    with pytest.raises(ModelTimeout):
        async for piece in run(work, timeout_s=0.3):
            got.append(piece)
    assert 1 <= len(got) < 100
    assert await asyncio.to_thread(work.ended.wait, 1.0), "worker still running after the timeout"
    assert work.emitted < 100


async def test_closing_the_stream_stops_generation_promptly() -> None:
    work = BlockingWork([f"w{i} " for i in range(1000)], delay_s=0.01)
    stream = run(work)
    assert await anext(stream) == "w0 "
    await stream.aclose()
    assert await asyncio.to_thread(work.ended.wait, 1.0)
    assert work.emitted < 50


async def test_cancelling_the_consumer_task_stops_the_worker() -> None:
    work = BlockingWork([f"w{i} " for i in range(1000)], delay_s=0.01)

    async def consume() -> None:
        async for _ in run(work):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(work.ended.wait, 1.0)
    assert work.emitted < 100


async def test_event_loop_keeps_running_during_a_blocking_generation() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    # Each piece blocks its thread for 0.1 s; on the loop this would allow no tick at all.
    async for _ in run(BlockingWork(["a", "b", "c"], delay_s=0.1)):
        pass
    task.cancel()
    assert ticks >= 15


async def test_concurrent_generations_are_limited_by_the_slots() -> None:
    slots = asyncio.Semaphore(2)
    active = peak = 0
    lock = threading.Lock()

    def work(control: WorkerControl) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.1)
        control.emit("x")
        with lock:
            active -= 1

    async def one() -> str:
        return "".join([p async for p in run(work, slots=slots)])

    assert await asyncio.gather(*(one() for _ in range(5))) == ["x"] * 5
    assert peak == 2


async def test_a_cancelled_generation_holds_its_slot_until_its_thread_ends() -> None:
    slots = asyncio.Semaphore(1)
    work = BlockingWork([f"w{i}" for i in range(100)], delay_s=0.05)
    stream = run(work, slots=slots)
    await anext(stream)
    await stream.aclose()
    # The next generation may only start once the first worker has really stopped.
    second = BlockingWork(["next"])
    assert [p async for p in run(second, slots=slots)] == ["next"]
    assert work.ended.is_set()


async def test_waiting_for_a_slot_counts_against_the_timeout() -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    with pytest.raises(ModelTimeout, match="slot"):
        async for _ in run(BlockingWork(["a"]), slots=slots, timeout_s=0.1):
            pass


async def test_stop_string_ends_generation_in_the_worker() -> None:
    work = BlockingWork(["The end", ".", "\n\n", "More", " text"] + ["x"] * 50)
    text = "".join([p async for p in run(work, stops=["\n\n"])])
    assert text == "The end."
    assert work.emitted == 2  # the worker stopped at the stop string instead of running on
