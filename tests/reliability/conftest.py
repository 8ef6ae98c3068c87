"""Fixtures of the bad-input suites: one running Tandem per module (deterministic story model, admin
token, rate limits raised out of the way) with a test client, row counts of every table, and the
checks every case ends with (no traceback, the server still answers "help")."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import Tandem, build_app
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.server import init_app
from bot.settings import Settings
from bot.storage.schema import Base
from tests.conftest import PG_ADMIN_URL, POSTGRES_AVAILABLE, _create_pg_database, _drop_pg_database

ADMIN_TOKEN = "hostile-admin-token"
# A corpus sends hundreds of requests from one address within seconds; the shipped limits
# (another suite's subject) would answer 429 long before it is through.
UNLIMITED = {"per_minute": 1_000_000, "burst": 1_000_000}


def hostile_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, admin_token=SecretStr(ADMIN_TOKEN),
                    server={"rate_limit_per_ip": UNLIMITED, "rate_limit_per_user": UNLIMITED})


def story_model() -> FakeLanguageModel:
    """Numbered passages, so every candidate differs and none repeats the prompt."""
    counter = itertools.count(1)
    return FakeLanguageModel(script=FakeScript(respond=lambda prompt, params: f"The owl said word {next(counter)}."))


def clean_environment(mp: pytest.MonkeyPatch) -> None:
    """Module-scoped fixtures run before the per-test environment cleaner: clean here too."""
    for key in list(os.environ):
        if key.startswith("TANDEM_") and key != "TANDEM_TEST_PG_URL":
            mp.delenv(key)


@asynccontextmanager
async def running_tandem(tmp_path_factory: pytest.TempPathFactory, backend: str = "sqlite") -> AsyncIterator[Tandem]:
    """A Tandem on a fresh SQLite file, or on a fresh PostgreSQL database (skipped when none answers)."""
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp)
        settings = hostile_settings(tmp_path_factory.mktemp("hostile") / "data")
    pg_name = None
    if backend == "postgres":
        if not POSTGRES_AVAILABLE:
            pytest.skip(f"PostgreSQL does not answer at {PG_ADMIN_URL}")
        pg_name, url = await _create_pg_database()
        settings.database_url = SecretStr(url)
    tandem = await build_app(settings, language_model=story_model())
    try:
        yield tandem
    finally:
        await tandem.close()
        if pg_name is not None:
            await _drop_pg_database(pg_name)


@pytest_asyncio.fixture(loop_scope="module", scope="module",
                        params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def hostile_tandem(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                         ) -> AsyncIterator[Tandem]:
    """Tandem on SQLite, and on PostgreSQL when it answers: NUL bytes, 32-bit ids and column
    lengths are refused only by PostgreSQL, so bad input must be stopped before either sees it."""
    async with running_tandem(tmp_path_factory, request.param) as tandem:
        yield tandem


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sqlite_tandem(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tandem]:
    """Tandem on SQLite only, for suites whose channel never reaches the database differently."""
    async with running_tandem(tmp_path_factory) as tandem:
        yield tandem


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hostile_client(hostile_tandem: Tandem) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(init_app(hostile_tandem))) as test_client:
        yield test_client


async def row_counts(tandem: Tandem) -> dict[str, int]:
    """Rows per table: equal snapshots before and after a refused request mean nothing was stored."""
    async with tandem.db.transaction() as session:
        return {table.name: await session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables}


def assert_no_traceback(*texts: Any) -> None:
    for text in texts:
        assert "Traceback" not in str(text) and 'File "' not in str(text), text


async def open_conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    """A new anonymous user's conversation and the headers that carry its token."""
    response = await client.post("/api/conversations")
    assert response.status == 201
    body = await response.json()
    return body["conversation_id"], {"Authorization": f"Bearer {body['token']}"}


async def assert_still_answers(client: TestClient) -> None:
    """The server survived: a new user's "help" gets the help skill's answer."""
    conversation, auth = await open_conversation(client)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"}, headers=auth)
    assert response.status == 200, await response.text()
    reply = await response.json()
    assert reply["skill"] == "help" and "Tandem" in reply["text"]
