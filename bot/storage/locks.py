"""Locks between the processes that share one database: PostgreSQL advisory locks and lock files.

Both kinds die with their holder: a session advisory lock when its connection closes (the
process exited, crashed, or the connection was killed), an flock when the process exits. So a
crashed holder never leaves a lock behind that someone has to clear by hand.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

log = logging.getLogger(__name__)

# How often a waiter for a lock file looks again (flock has no asynchronous wait).
FILE_POLL_S = 0.05


def advisory_key(name: str) -> int:
    """The signed 64-bit key of the advisory lock `name`, the same in every process and release
    (pg_locks shows it split: classid = the high 32 bits, objid = the low 32 bits)."""
    digest = hashlib.sha256(f"tandem:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class FileLock:
    """An exclusive flock on `path`, held through one open file of this object's own (so two
    FileLocks on one path exclude each other even inside one process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    async def acquire(self) -> None:
        """Wait for the lock; polled rather than blocked in a thread, so a cancelled wait leaves no
        thread behind that takes the lock later for nobody."""
        while not self.try_acquire():
            await asyncio.sleep(FILE_POLL_S)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own, outside every pool:
    the lock is held exactly as long as that connection lives."""

    def __init__(self, url: str, key: int, *, check_timeout_s: float = 5.0) -> None:
        self.key = key
        self._check_timeout_s = check_timeout_s
        self._engine = create_async_engine(url, poolclass=pool.NullPool)
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        connection = await self._connect()
        try:
            got = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        except BaseException:
            await _close_quietly(connection)
            raise
        if not got:
            await _close_quietly(connection)
            return False
        self._connection = connection
        return True

    async def acquire(self) -> None:
        """Wait in the server until the lock is free."""
        if self._connection is not None:
            return
        connection = await self._connect()
        try:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        except BaseException:
            await _close_quietly(connection)
            raise
        self._connection = connection

    async def check(self) -> bool:
        """Whether the lock is still ours: its connection answers. A dead connection (the server
        restarted, pg_terminate_backend, a network cut) means the lock is gone, maybe to another."""
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(self._check_timeout_s):
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means the lock can no longer be trusted
            log.warning("advisory lock connection lost key=%d error=%s", self.key, type(exc).__name__)
            self._connection = None
            await _close_quietly(connection)
            return False
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:  # noqa: BLE001 - closing the connection below releases it all the same
            pass
        await _close_quietly(connection)

    async def close(self) -> None:
        await self.release()
        await self._engine.dispose()

    async def _connect(self) -> AsyncConnection:
        connection = await self._engine.connect()
        # Autocommit: the lock belongs to the session, and no transaction stays open while held.
        return await connection.execution_options(isolation_level="AUTOCOMMIT")


async def _close_quietly(connection: AsyncConnection) -> None:
    try:
        await connection.close()
    except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone either way
        try:
            await connection.invalidate()
        except Exception:  # noqa: BLE001
            pass
