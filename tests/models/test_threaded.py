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


class GatedWork:
    """Emits its first piece at once, then waits for `gate` before each further piece, so a
    test decides what happens between two pieces (a close, a cancel, a timeout)."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.gate = threading.Event()
        self.ended = threading.Event()
        self.emitted = 0

    def __call__(self, control: WorkerControl) -> None:
        try:
            for index, piece in enumerate(self.pieces):
                # The guard only keeps a broken run from hanging the suite; it is not a measurement.
                if index and not self.gate.wait(HANG_GUARD_S):
                    raise RuntimeError("the test never opened the gate")
                control.emit(piece)
                self.emitted += 1
        finally:
            self.ended.set()


# Generous waits that only stop a broken test from hanging; passing never depends on them.
HANG_GUARD_S = 30.0


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
    work = GatedWork([f"w{i} " for i in range(100)])
    got: list[str] = []
    with pytest.raises(ModelTimeout):
        async for piece in run(work, timeout_s=1.0):
            got.append(piece)
    assert got == ["w0 "]
    work.gate.set()  # the worker goes on only now, after the timeout: its next emit must stop it
    assert await asyncio.to_thread(work.ended.wait, HANG_GUARD_S), "worker still running after the timeout"
    assert work.emitted == 1


async def test_closing_the_stream_stops_generation_at_the_next_piece() -> None:
    work = GatedWork([f"w{i} " for i in range(1000)])
    stream = run(work)
    assert await anext(stream) == "w0 "
    await stream.aclose()
    work.gate.set()
    assert await asyncio.to_thread(work.ended.wait, HANG_GUARD_S)
    assert work.emitted == 1


async def test_cancelling_the_consumer_task_stops_the_worker() -> None:
    work = GatedWork([f"w{i} " for i in range(1000)])
    first_piece = asyncio.Event()

    async def consume() -> None:
        async for _ in run(work):
            first_piece.set()

    task = asyncio.create_task(consume())
    await first_piece.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    work.gate.set()
    assert await asyncio.to_thread(work.ended.wait, HANG_GUARD_S)
    assert work.emitted == 1


async def test_event_loop_keeps_running_during_a_blocking_generation() -> None:
    blocking = threading.Event()
    loop_ran = threading.Event()

    def work(control: WorkerControl) -> None:
        # Blocks until a coroutine has run meanwhile: if the work ran on the event loop,
        # that coroutine could never run and this would give up.
        blocking.set()
        if not loop_ran.wait(HANG_GUARD_S):
            raise RuntimeError("the event loop stood still while the generation blocked")
        control.emit("after the loop ran")

    async def answer_from_the_loop() -> None:
        while not blocking.is_set():
            await asyncio.sleep(0.001)
        loop_ran.set()

    answering = asyncio.create_task(answer_from_the_loop())
    assert [p async for p in run(work, timeout_s=HANG_GUARD_S)] == ["after the loop ran"]
    await answering


async def test_concurrent_generations_are_limited_by_the_slots() -> None:
    slots = asyncio.Semaphore(2)
    active = peak = 0
    lock = threading.Lock()
    two_at_once = threading.Event()

    def work(control: WorkerControl) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active == 2:
                two_at_once.set()
        # The first two wait for each other, so both slots are surely in use at the same time.
        two_at_once.wait(HANG_GUARD_S)
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
