"""The database handle: async engine, sessions, and schema migrations through Alembic."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.core.errors import StorageError
from bot.resources import shipped_folder
from bot.storage.locks import AdvisoryLock, FileLock, advisory_key

log = logging.getLogger(__name__)

# Held by the one process that migrates; the others wait, then find nothing left to do.
MIGRATION_LOCK_KEY = advisory_key("migrate")


def alembic_config(url: str) -> Config:
    """An Alembic config for `url`; the URL travels in attributes, never in a logged ini value.
    The migrations are the shipped folder: bot/migrations installed, migrations/ in a checkout."""
    cfg = Config()
    cfg.set_main_option("script_location", str(shipped_folder("migrations")))
    cfg.attributes["url"] = url
    return cfg


def safe_url(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL must not leak through the error path
        return "<invalid database url>"


class Database:
    """Owns the engine and the session factory; one per process, built by the composition root."""

    def __init__(self, url: str, *, echo: bool = False, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # The SQLite file, watched so that a file moved, deleted or replaced under the open
        # connections is noticed (see _check_file).
        self.path: Path | None = None
        self._file_id: tuple[int, int] | None = None
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            self.path = Path(parsed.database)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"echo": echo}
        if self.is_sqlite:
            # aiosqlite runs one thread per connection; a busy timeout lets writers queue
            # instead of failing at once when another process holds the write lock.
            kwargs["connect_args"] = {"timeout": busy_timeout_s}
            if self.path is not None:
                # One connection per process: SQLite lets one writer in at a time anyway, and
                # connections of one process that contend for the write lock wait out SQLite's
                # busy handler (sleeps of up to 100 ms) where one connection's queue is FIFO
                # (bench.turns, p99 at 10 conversations: 1.6 s -> 0.17 s, BENCHMARKS.md). Transactions
                # are never nested, so one connection cannot deadlock a process.
                kwargs.update(pool_size=1, max_overflow=0, pool_timeout=busy_timeout_s)
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            busy_timeout_ms = max(1, int(busy_timeout_s * 1000))

            def pragmas(dbapi_connection, _record) -> None:
                _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

            event.listen(self.engine.sync_engine, "connect", pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error, raises StorageError."""
        await self._check_file()
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except (SQLAlchemyError, OSError) as exc:
            # OSError: a driver that cannot connect (refused, unreachable, timed out) may raise it bare.
            log.error("database error on %s: %s", safe_url(self.url), type(exc).__name__)
            raise StorageError(f"database error: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        """Raise StorageError unless the database can be written now (for the health check)."""
        await self._check_file()
        if self.path is not None and self.path.exists() and not os.access(self.path, os.W_OK):
            raise StorageError(f"the database file is not writable: {self.path}")
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(f"database error: {type(exc).__name__}") from exc

    async def _check_file(self) -> None:
        """SQLite's open connections go on writing into a file that was moved or deleted, and
        those writes are lost to the next start: refuse to work while the file is missing, and
        reopen the connections when another file (a restored backup) took its place."""
        if self.path is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            if self._file_id is None:
                return  # never opened yet: SQLite creates it
            raise StorageError(f"the database file is missing: {self.path}") from None
        except OSError as exc:
            raise StorageError(f"the database file cannot be read: {type(exc).__name__}") from exc
        file_id = (stat.st_dev, stat.st_ino)
        if self._file_id is not None and file_id != self._file_id:
            log.warning("database file replaced, reopening path=%s", self.path)
            await self.engine.dispose()
        self._file_id = file_id

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision`; migrations are the only way the schema is made.

        Processes that start together (`tandem run --workers N`, several machines, a `tandem
        migrate` beside a running server) take turns under one lock: the first migrates, the
        next find the schema current and change nothing."""
        cfg = alembic_config(self.url)
        try:
            async with self._migration_lock():
                # Alembic's env.py runs its own event loop, so it gets a thread of its own.
                await asyncio.to_thread(command.upgrade, cfg, revision)
        except (SQLAlchemyError, OSError) as exc:
            # Start-up stops with this message: say where and why, never with the password.
            reason = str(exc).splitlines()[0] if str(exc) else ""
            password = make_url(self.url).password
            if password:
                reason = reason.replace(password, "***")
            raise StorageError(f"cannot migrate the database at {safe_url(self.url)}: "
                               f"{type(exc).__name__}: {reason}") from exc
        log.info("database migrated to %s: %s", revision, safe_url(self.url))

    @asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """PostgreSQL: an advisory lock on a connection of its own; SQLite: an flock on
        `<db>.migrate.lock` beside the file; an in-memory database has no one to share with."""
        if self.is_sqlite:
            if self.path is None:
                yield
                return
            lock = FileLock(self.path.with_name(self.path.name + ".migrate.lock"))
            if not lock.try_acquire():
                log.info("another process is migrating the database; waiting lock=%s", lock.path)
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
            return
        lock = AdvisoryLock(self.url, MIGRATION_LOCK_KEY)
        try:
            if not await lock.try_acquire():
                log.info("another process is migrating the database; waiting key=%d", MIGRATION_LOCK_KEY)
                await lock.acquire()
            yield
        finally:
            await lock.close()

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer writes; foreign keys make deletes cascade.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
