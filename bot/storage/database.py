"""The database handle: async engine, sessions, and schema migrations through Alembic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.core.errors import StorageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for `url`; the URL travels in attributes, never in a logged ini value."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
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

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"echo": echo}
        if self.is_sqlite:
            # aiosqlite runs one thread per connection; a busy timeout lets writers queue
            # instead of failing at once when another process holds the write lock.
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error, raises StorageError."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            log.error("database error on %s: %s", safe_url(self.url), type(exc).__name__)
            raise StorageError(f"database error: {type(exc).__name__}") from exc

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision`; migrations are the only way the schema is made."""
        cfg = alembic_config(self.url)
        # Alembic's env.py runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(command.upgrade, cfg, revision)
        log.info("database migrated to %s: %s", revision, safe_url(self.url))

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer writes; foreign keys make deletes cascade.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
