"""Migrations run once under a lock: `tandem migrate` processes started together on one fresh database all succeed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from bot.storage.database import MIGRATION_LOCK_KEY, Database, alembic_config
from bot.storage.locks import AdvisoryLock, FileLock

PROCESSES = 4


def _migrate_at_once(url: str, env: dict[str, str], cwd: Path) -> list[subprocess.CompletedProcess]:
    env = {**env, "TANDEM_DATABASE_URL": url, "TANDEM_DATA_DIR": str(cwd / "data"), "TANDEM_LOG_LEVEL": "INFO"}
    started = [subprocess.Popen([sys.executable, "-m", "bot.cli", "migrate"], env=env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(PROCESSES)]
    results = []
    for process in started:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


async def _versions(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return [row[0] for row in await connection.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        await db.close()


def _head(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def test_processes_migrating_one_fresh_database_at_once_all_succeed(database_url: str, subprocess_env,
                                                                          tmp_path: Path) -> None:
    results = _migrate_at_once(database_url, subprocess_env, tmp_path)

    for result in results:
        assert result.returncode == 0, result.stderr
        assert "database up to date" in result.stdout
    assert await _versions(database_url) == [_head(database_url)]


async def test_a_migration_waits_while_another_process_holds_the_lock(database_url: str) -> None:
    db = Database(database_url)
    if db.is_sqlite:
        holder = FileLock(db.path.with_name(db.path.name + ".migrate.lock"))
        assert holder.try_acquire()
    else:
        holder = AdvisoryLock(database_url, MIGRATION_LOCK_KEY)
        assert await holder.try_acquire()
    try:
        migrating = asyncio.create_task(db.migrate())
        await asyncio.sleep(1.0)
        assert not migrating.done()  # waiting for the holder
        assert "alembic_version" not in await _tables(db)
        await _release(holder)
        await asyncio.wait_for(migrating, 60)
    finally:
        await _release(holder)
        await db.close()
    assert await _versions(database_url) == [_head(database_url)]


async def _release(holder: FileLock | AdvisoryLock) -> None:
    if isinstance(holder, FileLock):
        holder.release()
    else:
        await holder.close()


async def _tables(db: Database) -> list[str]:
    async with db.engine.connect() as connection:
        return await connection.run_sync(lambda c: c.dialect.get_table_names(c))
