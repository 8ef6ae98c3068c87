"""Shared fixtures: settings in a temporary data folder, SQLite and PostgreSQL databases, a built app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT, Settings, load_settings

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A test client sends turns faster than any person: rate limits are off except in the tests of
# the limits themselves (tests/reliability/test_security.py), which set their own.
UNLIMITED = {"TANDEM_SERVER__RATE_LIMIT_PER_IP__PER_MINUTE": "0", "TANDEM_SERVER__RATE_LIMIT_PER_USER__PER_MINUTE": "0"}

PG_ADMIN_URL = os.environ.get("TANDEM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_answers() -> bool:
    try:
        import asyncpg
    except ImportError:
        return False

    async def probe() -> bool:
        try:
            connection = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), 3)
        except Exception:  # noqa: BLE001 - any failure means "not available"
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


POSTGRES_AVAILABLE = _postgres_answers()

# Database 15 of the machine's Redis, kept apart from anything else using it (keys carry a
# per-test prefix too).
REDIS_TEST_URL = os.environ.get("TANDEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_answers(url: str) -> bool:
    try:
        import redis
    except ImportError:
        return False
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis_server(port: int, folder: Path) -> subprocess.Popen:
    """A private redis-server on 127.0.0.1:`port` that keeps nothing on disk; it answers on return."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not redis_answers(f"redis://127.0.0.1:{port}/0"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the tests: the one at TANDEM_TEST_REDIS_URL when it answers, else one started
    here when redis-server is installed; the tests that need it skip when there is neither."""
    if redis_answers(REDIS_TEST_URL):
        yield REDIS_TEST_URL
        return
    if shutil.which("redis-server") is None:
        pytest.skip(f"no Redis answers at {REDIS_TEST_URL} and redis-server is not installed")
    port = free_port()
    process = start_redis_server(port, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test's own environment, never from the developer's."""
    for key in list(os.environ):
        if key.startswith("TANDEM_") and key != "TANDEM_TEST_PG_URL":
            monkeypatch.delenv(key)
    for key, value in UNLIMITED.items():
        monkeypatch.setenv(key, value)


async def _create_pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"tandem_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def advisory_lock_holder(key: int) -> int | None:
    """The backend pid holding PostgreSQL advisory lock `key` (pg_locks is cluster-wide), or None."""
    import asyncpg

    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return await admin.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1 AND objid = $2", unsigned >> 32, unsigned & 0xFFFF_FFFF)
    finally:
        await admin.close()


async def terminate_backend(pid: int) -> bool:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        return bool(await admin.fetchval("SELECT pg_terminate_backend($1)", pid))
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _fresh_pg_database() -> AsyncIterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards (the test skips without a server)."""
    if not POSTGRES_AVAILABLE:
        pytest.skip(f"PostgreSQL does not answer at {PG_ADMIN_URL}")
    name, url = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(name)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (skipped when the server does not answer)."""
    async with _fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, and a new PostgreSQL database when the server answers."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
        return
    async with _fresh_pg_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


@pytest.fixture
async def tandem(settings: Settings):
    from bot.app import build_app

    app = await build_app(settings)
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for running `tandem` in a child process during tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_") or k == "TANDEM_TEST_PG_URL"}
    env["HF_HUB_OFFLINE"] = "1"
    env.update(UNLIMITED)
    # The small bundled model: `tandem run` and `chat` check the configured model at start-up.
    env["TANDEM_LM__MODEL"] = "bundled:smollm2"
    env["TANDEM_LM__N_THREADS"] = "1"
    # Each child has a fresh data folder, where warming the Russian encoder up costs ~9 s of CPU
    # beside the test; the warm-up itself is tested in tests/nlu/test_classifier.py.
    env["TANDEM_NLU__WARM_UP_LANGUAGES"] = "false"
    return env
