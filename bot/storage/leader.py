"""Leadership: among the processes sharing one database, one at a time does a job (Telegram polling).

PostgreSQL: a session advisory lock on a connection of its own, held for as long as the leader
leads; when that connection dies the lock is free and the leader steps down on its next check.
SQLite: an flock on a file in the data folder (the processes share one machine), lost only with
the process. The others try again every `retry_s`, so one takes over when the leader goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.storage.database import Database
from bot.storage.locks import AdvisoryLock, FileLock, advisory_key

log = logging.getLogger(__name__)


class Leadership:
    """`name` is the job; `lock_file` is used on SQLite. `check_s`: how often a PostgreSQL leader
    checks that its lock connection is alive (a lost lock is noticed within that time)."""

    def __init__(self, db: Database, name: str, lock_file: Path, *, retry_s: float = 5.0,
                 check_s: float | None = None) -> None:
        self.name = name
        self.retry_s = retry_s
        self.check_s = check_s if check_s is not None else retry_s
        self._lock: FileLock | AdvisoryLock = FileLock(lock_file) if db.is_sqlite else \
            AdvisoryLock(db.url, advisory_key(name))

    @property
    def is_leader(self) -> bool:
        return self._lock.held

    async def try_acquire(self) -> bool:
        """Become the leader now if no one else is; False when another process leads."""
        if isinstance(self._lock, FileLock):
            return self._lock.try_acquire()
        return await self._lock.try_acquire()

    async def acquire(self) -> None:
        """Wait until this process leads: try every `retry_s`; a database that does not answer is
        logged and tried again like a busy lock."""
        waiting_logged = False
        while True:
            try:
                if await self.try_acquire():
                    log.info("leader elected job=%s", self.name)
                    return
                if not waiting_logged:
                    log.info("another process leads job=%s; trying again every %.1f s", self.name, self.retry_s)
                    waiting_logged = True
            except Exception as exc:  # noqa: BLE001 - run time is forgiving: retry, never crash the server
                log.warning("leader election failed job=%s error=%s; trying again in %.1f s",
                            self.name, type(exc).__name__, self.retry_s)
            await asyncio.sleep(self.retry_s)

    async def wait_lost(self) -> None:
        """Return once leadership is lost (PostgreSQL: the lock connection died). A lock file is
        lost only with the process, so on SQLite this waits until cancelled."""
        while True:
            await asyncio.sleep(self.check_s)
            if isinstance(self._lock, AdvisoryLock) and not await self._lock.check():
                log.warning("leadership lost job=%s", self.name)
                return

    async def release(self) -> None:
        if isinstance(self._lock, FileLock):
            self._lock.release()
        else:
            await self._lock.release()

    async def close(self) -> None:
        await self.release()
        if isinstance(self._lock, AdvisoryLock):
            await self._lock.close()

    async def lead(self, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
        """Run until cancelled: whenever this process becomes the leader, `start()` the job; when
        leadership is lost, `stop()` it and wait for the next turn. Cancelling stops the job and
        hands leadership on."""
        try:
            while True:
                await self.acquire()
                try:
                    await start()
                    await self.wait_lost()
                except Exception:  # noqa: BLE001 - step down and try again later, never crash the server
                    log.exception("the leader's job failed job=%s; stepping down", self.name)
                finally:
                    await asyncio.shield(_stop_quietly(stop, self.name))
                    await self.release()
                # Others try every retry_s: after this pause one of them has, so a leader that lost
                # its lock (its database connection, likely) or failed does not take it back at once.
                await asyncio.sleep(self.retry_s)
        finally:
            await self.close()


async def _stop_quietly(stop: Callable[[], Awaitable[None]], name: str) -> None:
    try:
        await stop()
    except Exception:  # noqa: BLE001 - a job that fails to stop must not keep leadership
        log.exception("stopping the leader's job failed job=%s", name)
