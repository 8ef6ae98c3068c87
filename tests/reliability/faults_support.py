"""The harness of the database fault tests: a live bot on a chosen database, snapshots of every stored
record, a ledger of what the bot acknowledged, and SQLite lock and path helpers."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Tandem, build_app
from bot.core.skill import Skill, Turn
from bot.dispatch.dispatcher import CANNOT_SAVE, NOT_SAVED
from bot.models.fake import FakeLanguageModel
from bot.server import init_app
from bot.settings import Settings


BUSY_TIMEOUT_S = 0.5
# Append-only tables (rows are never updated in place) and the columns that must never change.
SNAPSHOT = {
    "messages": "id, conversation_id, parent_id, author, text, status",
    "feedback": "id, conversation_id, message_id, kind, value, comment",
    "passages": "id, story_id, parent_id, author, text, status",
}


class SlowWriterSkill(Skill):
    """Stands in for the fallback skill: streams a few words slowly, so a fault can strike mid-turn."""

    name = "fallback"

    def __init__(self, words: int = 6, delay_s: float = 0.15) -> None:
        super().__init__()
        self.words, self.delay_s = words, delay_s
        self.started = asyncio.Event()

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        for index in range(self.words):
            self.started.set()
            await asyncio.sleep(self.delay_s)
            yield f"word{index} "


@dataclass
class Ledger:
    """What the clients were told was stored: ids by kind, with the value they were told."""

    messages: dict[int, str] = field(default_factory=dict)   # message id -> text
    ratings: dict[int, int] = field(default_factory=dict)    # feedback id -> stars
    thumbs: dict[int, int] = field(default_factory=dict)     # feedback id -> message id

    @property
    def count(self) -> int:
        return len(self.messages) + len(self.ratings) + len(self.thumbs)


@dataclass
class LiveBot:
    tandem: Tandem
    client: TestClient
    url: str
    ledger: Ledger = field(default_factory=Ledger)

    async def open(self) -> tuple[dict[str, str], str]:
        response = await self.client.post("/api/conversations")
        assert response.status == 201
        body = await response.json()
        return {"Authorization": f"Bearer {body['token']}"}, body["conversation_id"]

    async def say(self, auth: dict[str, str], conversation: str, words: str) -> dict[str, Any]:
        """A turn; what it acknowledged goes into the ledger. A 503 (the database failed before
        the turn began) comes back as its JSON error body."""
        response = await self.client.post(f"/api/conversations/{conversation}/messages", json={"text": words},
                                          headers=auth)
        assert response.status in (200, 503), await response.text()
        reply = await response.json()
        if response.status == 503:
            return reply
        if reply["user_message_id"] is not None:
            self.ledger.messages[reply["user_message_id"]] = words
        if reply["message_id"] is not None:
            self.ledger.messages[reply["message_id"]] = reply["text"]
        return reply

    async def rate(self, auth: dict[str, str], conversation: str, stars: int) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(f"/api/conversations/{conversation}/rating", json={"rating": stars},
                                          headers=auth)
        body = await response.json()
        if response.status == 201:
            self.ledger.ratings[body["feedback_id"]] = stars
        return response.status, body

    async def thumb(self, auth: dict[str, str], message_id: int) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(f"/api/messages/{message_id}/feedback", json={"thumb": "up"},
                                          headers=auth)
        body = await response.json()
        if response.status == 201:
            self.ledger.thumbs[body["feedback_id"]] = message_id
        return response.status, body

    async def health(self) -> int:
        return (await self.client.get("/healthz")).status


@contextlib.asynccontextmanager
async def live_bot(data_dir: Path, *, database_url: str = "", skills: dict[str, Skill] | None = None,
                   **settings: Any) -> AsyncIterator[LiveBot]:
    """Tandem in-process behind its real aiohttp app, with a fake model (the faults are in the database)."""
    config = Settings(data_dir=data_dir, database_url=SecretStr(database_url), **settings)
    tandem = await build_app(config, language_model=FakeLanguageModel("Once upon a time, a fox found a lantern."))
    for name, skill in (skills or {}).items():
        tandem.skills._skills[name] = skill  # a scripted stand-in for a shipped skill
    try:
        async with TestClient(TestServer(init_app(tandem))) as client:
            yield LiveBot(tandem, client, config.resolved_database_url)
    finally:
        await tandem.close()


async def snapshot(url: str) -> dict[str, dict[int, tuple]]:
    """The append-only rows, read over a connection of the test's own (not the bot's)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tables = {}
            for table, columns in SNAPSHOT.items():
                rows = await connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY id"))
                tables[table] = {row[0]: tuple(row) for row in rows}
            return tables
    finally:
        await engine.dispose()


def assert_kept(before: dict[str, dict[int, tuple]], after: dict[str, dict[int, tuple]]) -> int:
    """Every row of `before` is in `after`, unchanged; returns how many were checked."""
    for table, rows in before.items():
        for row_id, row in rows.items():
            assert after[table].get(row_id) == row, f"{table} row {row_id} lost or changed"
    return sum(len(rows) for rows in before.values())


async def assert_ledger_stored(bot: LiveBot, ledger: Ledger | None = None) -> int:
    """Every acknowledged message, rating and thumb is in the database with what the client was told."""
    ledger = ledger or bot.ledger
    rows = await snapshot(bot.url)
    for message_id, said in ledger.messages.items():
        assert message_id in rows["messages"], f"acknowledged message {message_id} lost"
        assert rows["messages"][message_id][4] == said.strip()
    for feedback_id, stars in ledger.ratings.items():
        assert rows["feedback"][feedback_id][3:5] == ("rating", stars), f"acknowledged rating {feedback_id} lost"
    for feedback_id, message_id in ledger.thumbs.items():
        assert rows["feedback"][feedback_id][2:5] == (message_id, "thumb", 1), f"acknowledged thumb {feedback_id} lost"
    return ledger.count


def no_traceback(body: Any) -> None:
    assert "Traceback" not in str(body) and "sqlalchemy" not in str(body).lower()


def assert_not_saved(reply: dict[str, Any]) -> None:
    """The polite "can't save" answer: the turn's reply saying so, or the API's 503 when the
    database failed before the turn could begin."""
    if "error" in reply:
        assert reply["error"]["code"] == "storage_unavailable" and "can't save" in reply["error"]["message"]
    else:
        assert reply["text"] in (NOT_SAVED["en"], CANNOT_SAVE["en"]), reply
        assert reply["status"] == "fallback" and reply["message_id"] is None
    no_traceback(reply)


@contextlib.contextmanager
def sqlite_write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's writer: holds the database's write lock (BEGIN IMMEDIATE) until the block ends."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def sqlite_path(data_dir: Path) -> Path:
    return data_dir / "tandem.sqlite3"


# --- SQLite busy ------------------------------------------------------------------------------
