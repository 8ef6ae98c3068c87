"""Migrations make the whole schema, on SQLite and PostgreSQL, with no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.storage.database import Database
from bot.storage.schema import Base


async def test_upgrade_to_head_creates_every_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
    finally:
        await db.close()


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as connection:
            diff = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        assert diff == []
    finally:
        await db.close()


async def test_migrating_twice_is_harmless(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        await db.migrate()
    finally:
        await db.close()


async def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        from alembic import command

        from bot.storage.database import alembic_config
        import asyncio

        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & tables)
        await db.migrate()
    finally:
        await db.close()
