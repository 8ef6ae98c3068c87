"""Leadership on one database: exactly one of two contenders leads, and the other takes over when it goes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.storage.database import Database
from bot.storage.leader import Leadership
from bot.storage.locks import advisory_key
from tests.conftest import advisory_lock_holder, terminate_backend

FAST = {"retry_s": 0.1, "check_s": 0.1}


def _contenders(url: str, tmp_path: Path) -> tuple[Database, Leadership, Leadership]:
    db = Database(url)
    lock_file = tmp_path / "data" / "job.lock"
    return db, Leadership(db, "job", lock_file, **FAST), Leadership(db, "job", lock_file, **FAST)


class Job:
    """Records the start and stop calls `Leadership.lead` makes."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0
        self.stops = 0

    async def start(self) -> None:
        self.running = True
        self.starts += 1

    async def stop(self) -> None:
        self.running = False
        self.stops += 1


async def _until(check, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_exactly_one_contender_wins_and_the_other_wins_after_release(database_url: str,
                                                                          tmp_path: Path) -> None:
    db, first, second = _contenders(database_url, tmp_path)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert first.is_leader and not second.is_leader
        await first.release()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.close()
        await second.close()
        await db.close()


async def test_the_waiting_contender_takes_over_when_the_leader_stops(database_url: str, tmp_path: Path) -> None:
    db, first, second = _contenders(database_url, tmp_path)
    jobs = [Job(), Job()]
    tasks = [asyncio.create_task(first.lead(jobs[0].start, jobs[0].stop))]
    await _until(lambda: jobs[0].running)
    tasks.append(asyncio.create_task(second.lead(jobs[1].start, jobs[1].stop)))
    try:
        await asyncio.sleep(0.5)  # several of the second's retries
        assert not jobs[1].running and jobs[1].starts == 0

        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        assert jobs[0].stops == 1 and not jobs[0].running
        await _until(lambda: jobs[1].running)
        assert jobs[1].starts == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()




@pytest.mark.postgres
async def test_a_killed_lock_connection_ends_leadership_and_the_other_takes_over(postgres_url: str,
                                                                                 tmp_path: Path) -> None:
    database_url = postgres_url
    db, first, second = _contenders(database_url, tmp_path)
    jobs = [Job(), Job()]
    tasks = [asyncio.create_task(first.lead(jobs[0].start, jobs[0].stop))]
    await _until(lambda: jobs[0].running)
    tasks.append(asyncio.create_task(second.lead(jobs[1].start, jobs[1].stop)))
    try:
        holder = await advisory_lock_holder(advisory_key("job"))
        assert holder is not None and await terminate_backend(holder)

        await _until(lambda: jobs[0].stops == 1)
        await _until(lambda: jobs[1].running)
        assert jobs[1].starts == 1
        # The first is a contender again and waits its turn.
        await asyncio.sleep(0.5)
        assert not jobs[0].running and jobs[0].starts == 1
        assert await advisory_lock_holder(advisory_key("job")) not in (None, holder)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()
