"""Database faults: a SQLite write lock held past the busy timeout, PostgreSQL connections killed and the
server restarted, the SQLite file gone or unwritable, the PostgreSQL address unreachable. Each time the
bot answers politely, recovers without a restart, and every record it acknowledged stays as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
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
from tests.conftest import PG_ADMIN_URL

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


async def test_sqlite_lock_past_the_busy_timeout_is_answered_then_the_next_turn_works(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S) as bot:
        auth, conversation = await bot.open()
        first = await bot.say(auth, conversation, "help")
        assert first["status"] == "complete" and first["message_id"]
        assert (await bot.rate(auth, conversation, 4))[0] == 201
        assert (await bot.thumb(auth, first["message_id"]))[0] == 201
        before = await snapshot(bot.url)

        with sqlite_write_lock(sqlite_path(data)):
            reply, (rating_status, rating), (thumb_status, thumb) = await asyncio.gather(
                bot.say(auth, conversation, "help"), bot.rate(auth, conversation, 5),
                bot.thumb(auth, first["message_id"]),
            )
            # Readers are not blocked by a writer (WAL): the check below sees the database as it is.
            assert await snapshot(bot.url) == before
        assert reply["text"] == NOT_SAVED["en"] and reply["status"] == "fallback"
        assert reply["message_id"] is None and reply["user_message_id"] is None
        for status, body in ((rating_status, rating), (thumb_status, thumb)):
            assert status == 503 and body["error"]["code"] == "storage_unavailable"
            assert "can't save" in body["error"]["message"]
            no_traceback(body)

        again = await bot.say(auth, conversation, "help")
        assert again["status"] == "complete" and again["message_id"] and "Tandem" in again["text"]
        assert (await bot.rate(auth, conversation, 5))[0] == 201
        after = await snapshot(bot.url)
        assert assert_kept(before, after) == 4  # 2 messages, a rating and a thumb
        assert len(after["messages"]) == len(before["messages"]) + 2   # nothing of the refused turn
        assert len(after["feedback"]) == len(before["feedback"]) + 1
        assert await assert_ledger_stored(bot) == 7


async def _frames_until(ws, kind: str, client_id: str | None = None) -> list[dict[str, Any]]:
    """Frames up to and including the first of `kind` (for `client_id`, when given)."""
    seen = []
    while True:
        frame = await ws.receive_json(timeout=20)
        seen.append(frame)
        if frame["type"] == kind and (client_id is None or frame.get("client_id") == client_id):
            return seen


async def test_sqlite_lock_a_widget_message_is_acknowledged_only_once_stored(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S) as bot:
        ws = await bot.client.ws_connect("/ws")
        await ws.send_json({"type": "hello"})
        conversation = (await ws.receive_json(timeout=20))["conversation_id"]
        await ws.send_json({"type": "message", "client_id": "c1", "text": "help"})
        first = (await _frames_until(ws, "reply", "c1"))[-1]
        acked: dict[int, str] = {first["user_message_id"]: "help", first["message_id"]: first["text"]}
        with sqlite_write_lock(sqlite_path(data)):
            await ws.send_json({"type": "message", "client_id": "c2", "text": "help"})
            frames = await _frames_until(ws, "error", "c2")
            await ws.send_json({"type": "thumb", "message_id": first["message_id"], "value": "up"})
            frames += await _frames_until(ws, "error")
            await ws.send_json({"type": "rating", "rating": 4})
            frames += await _frames_until(ws, "error")
        # Nothing was acknowledged: no ack for c2 (the widget keeps it in its outbox), no thumb_saved, no rating_saved.
        assert {f["type"] for f in frames} <= {"error", "typing", "delta", "reply"}, frames
        assert all(f.get("client_id") != "c2" or f["type"] == "error" for f in frames), frames
        assert [f["code"] for f in frames if f["type"] == "error"] == ["unavailable"] * 3
        # The widget sends what was never acknowledged again; now it is stored, once.
        await ws.send_json({"type": "message", "client_id": "c2", "text": "help"})
        resent = await _frames_until(ws, "reply", "c2")
        assert resent[0] == {"type": "ack", "client_id": "c2", "duplicate": False}
        acked[resent[-1]["user_message_id"]] = "help"
        acked[resent[-1]["message_id"]] = resent[-1]["text"]
        await ws.send_json({"type": "rating", "rating": 5})
        assert (await _frames_until(ws, "rating_saved"))[-1]["rating"] == 5
        await ws.close()
        rows = await snapshot(bot.url)
        assert {i: rows["messages"][i][4] for i in acked} == {i: t.strip() for i, t in acked.items()}
        assert len([r for r in rows["messages"].values() if r[1] == conversation]) == 4  # c2 stored once
        assert [r[3:5] for r in rows["feedback"].values()] == [("rating", 5)]


async def test_sqlite_lock_taken_mid_turn_keeps_the_user_message_and_recovers(tmp_path) -> None:
    data = tmp_path / "data"
    writer = SlowWriterSkill()
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S, skills={"fallback": writer}) as bot:
        auth, conversation = await bot.open()
        assert (await bot.say(auth, conversation, "tell me anything"))["skill"] == "fallback"
        writer.started.clear()
        before = await snapshot(bot.url)
        turn = asyncio.create_task(bot.say(auth, conversation, "and again"))
        await asyncio.wait_for(writer.started.wait(), 10)  # the user message is stored; the reply is being written
        with sqlite_write_lock(sqlite_path(data)):
            reply = await turn
        # The answer was made and shown, but the reply could not be stored: no id is given for it.
        assert reply["text"].startswith("word0") and reply["message_id"] is None
        assert reply["user_message_id"] is not None
        after = await snapshot(bot.url)
        assert assert_kept(before, after) == 2
        assert after["messages"][reply["user_message_id"]][4] == "and again"
        again = await bot.say(auth, conversation, "one more")
        assert again["status"] == "complete" and again["message_id"]
        assert await assert_ledger_stored(bot) == 5


async def test_sqlite_lock_during_a_streamed_story_passage_ends_the_stream_with_an_error(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S) as bot:
        script = bot.tandem.stories.model.script
        # Sentences stream one by one; the lock is taken at the first, well before the passage is stored.
        script.outputs = ("The fox ran. The owl sat on a branch and watched the night. The wind rose over the hills.",)
        script.delay_s = 0.05
        auth, _ = await bot.open()
        created = await bot.client.post("/api/stories", json={"title": "Fox", "text": "A fox lived in a wood."},
                                        headers=auth)
        story_id = (await created.json())["story"]["id"]
        before = await snapshot(bot.url)
        stream = {**auth, "Accept": "text/event-stream"}
        response = await bot.client.post(f"/api/stories/{story_id}/continue", json={"candidates": 1}, headers=stream)
        assert response.status == 200
        events: list[str] = []
        with contextlib.ExitStack() as held:
            async for line in response.content:
                if line.startswith(b"event: "):
                    events.append(line[7:].decode().strip())
                    if events == ["delta"]:  # the passage is being written: now the lock
                        held.enter_context(sqlite_write_lock(sqlite_path(data)))
        assert events[0] == "delta" and events[-1] == "error" and "candidate" not in events
        assert await snapshot(bot.url) == before  # the passage that could not be stored is not half there
        done = await (await bot.client.post(f"/api/stories/{story_id}/continue", json={"candidates": 1},
                                            headers=auth)).json()
        assert done["candidates"][0]["status"] == "complete"
        after = await snapshot(bot.url)
        assert assert_kept(before, after) == 1 and len(after["passages"]) == 2


async def test_sqlite_lock_while_a_chat_story_passage_is_stored_says_it_could_not_save(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S) as bot:
        script = bot.tandem.stories.model.script
        script.outputs = ("The fox ran. The owl sat on a branch and watched the night. The wind rose over the hills.",)
        script.delay_s = 0.05
        auth, conversation = await bot.open()
        assert (await bot.say(auth, conversation, "/story"))["skill"] == "story"
        before = await snapshot(bot.url)
        stream = {**auth, "Accept": "text/event-stream"}
        response = await bot.client.post(f"/api/conversations/{conversation}/messages", json={"text": "continue 1"},
                                         headers=stream)
        reply, locked = None, False
        with contextlib.ExitStack() as held:
            name = None
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    name = line[7:]
                    if name == "delta" and not locked:  # the passage is being written: now the lock
                        held.enter_context(sqlite_write_lock(sqlite_path(data)))
                        locked = True
                elif line.startswith("data: ") and name == "reply":
                    reply = json.loads(line[6:])
        assert reply is not None and reply["text"] == CANNOT_SAVE["en"] and reply["status"] == "fallback"
        no_traceback(reply)
        during = await snapshot(bot.url)
        # The user's message was stored (its id was given); the passage and the reply were not.
        assert reply["message_id"] is None and during["messages"][reply["user_message_id"]][4] == "continue 1"
        assert len(during["messages"]) == len(before["messages"]) + 1 and during["passages"] == {}
        again = await bot.say(auth, conversation, "continue 1")
        assert again["skill"] == "story" and again["data"]["story"]["candidates"][0]["status"] == "complete"
        assert assert_kept(during, await snapshot(bot.url)) == 3


# --- SQLite file gone, replaced or unwritable --------------------------------------------------


async def test_sqlite_folder_gone_is_answered_and_healthz_degrades_until_it_is_back(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data) as bot:
        auth, conversation = await bot.open()
        first = await bot.say(auth, conversation, "help")
        assert (await bot.rate(auth, conversation, 3))[0] == 201
        before = await snapshot(bot.url)
        assert await bot.health() == 200

        away = tmp_path / "unmounted"
        data.rename(away)  # the volume is gone; the open connections would write into the moved file
        try:
            assert_not_saved(await bot.say(auth, conversation, "help"))
            status, body = await bot.rate(auth, conversation, 5)
            assert status == 503
            assert_not_saved(body)
            assert await bot.health() == 503
            assert not data.exists()  # nothing created an empty database in its place
        finally:
            away.rename(data)

        assert await bot.health() == 200
        again = await bot.say(auth, conversation, "help")
        assert again["status"] == "complete" and again["message_id"] > first["message_id"]
        after = await snapshot(bot.url)
        assert assert_kept(before, after) == 3
        assert len(after["messages"]) == 4 and len(after["feedback"]) == 1  # the refused rating is not there
        assert await assert_ledger_stored(bot) == 5


async def test_sqlite_file_restored_from_a_copy_is_picked_up_without_a_restart(tmp_path) -> None:
    data = tmp_path / "data"
    async with live_bot(data) as bot:
        auth, conversation = await bot.open()
        await bot.say(auth, conversation, "help")
        assert (await bot.rate(auth, conversation, 2))[0] == 201
        path = sqlite_path(data)
        copy = tmp_path / "backup.sqlite3"
        with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.move(copy, path)  # an operator restores the backup in place
        reply = await bot.say(auth, conversation, "help")
        assert reply["status"] == "complete" and reply["message_id"]
        assert await assert_ledger_stored(bot) == 5
        assert await bot.health() == 200


def _immutable(paths: list[Path], on: bool) -> bool:
    """chattr +i / -i on each file; False where the file system or the user cannot."""
    for path in paths:
        result = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
        if result.returncode != 0:
            return False
    return True


async def test_sqlite_file_unwritable_is_answered_and_healthz_degrades_until_writable(tmp_path) -> None:
    data = tmp_path / "data"
    # chattr +i, not chmod: a mode change does not reach the connections already open (and root
    # ignores it), whereas an immutable file refuses every write.
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("making a file unwritable under open connections needs root and chattr")
    async with live_bot(data, database_busy_timeout_s=BUSY_TIMEOUT_S) as bot:
        auth, conversation = await bot.open()
        await bot.say(auth, conversation, "help")
        assert (await bot.rate(auth, conversation, 3))[0] == 201
        before = await snapshot(bot.url)
        path = sqlite_path(data)
        # Not the -shm file: it is memory-mapped, and a write to an immutable mapping kills the process.
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        if not _immutable(files, True):
            _immutable(files, False)
            pytest.skip("chattr +i is not supported on this file system")
        try:
            assert await bot.health() == 503
            assert_not_saved(await bot.say(auth, conversation, "help"))
            status, body = await bot.rate(auth, conversation, 5)
            assert status == 503
            assert_not_saved(body)
        finally:
            _immutable(files, False)
        assert await bot.health() == 200
        again = await bot.say(auth, conversation, "help")
        assert again["status"] == "complete" and again["message_id"]
        after = await snapshot(bot.url)
        assert assert_kept(before, after) == 3
        assert await assert_ledger_stored(bot) == 5


# --- PostgreSQL: connections killed, server restarted, address unreachable ---------------------


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _terminate_backends(database: str, keep: int | None = None) -> int:
    """Kill the server side of every connection to `database` (but `keep`); returns how many."""
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
            " AND pid <> coalesce($2, 0)", database, keep)
        return len(killed)
    finally:
        await admin.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_connections_killed_between_turns_are_replaced(database_url, tmp_path) -> None:
    async with live_bot(tmp_path / "data", database_url=database_url) as bot:
        auth, conversation = await bot.open()
        killed = 0
        for round_ in range(3):
            reply = await bot.say(auth, conversation, "help")
            assert reply["status"] == "complete" and reply["message_id"], reply
            assert (await bot.rate(auth, conversation, round_ + 2))[0] == 201
            killed += await _terminate_backends(_database_name(database_url))
        assert killed >= 3  # the pool held connections, and each was killed under it
        reply = await bot.say(auth, conversation, "help")
        assert reply["status"] == "complete" and reply["message_id"]
        assert await bot.health() == 200
        assert await assert_ledger_stored(bot) == 11


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_connection_killed_inside_a_turn_is_answered_and_the_next_turn_works(
        database_url, tmp_path) -> None:
    import asyncpg

    database = _database_name(database_url)
    writer = SlowWriterSkill(words=4, delay_s=0.1)
    async with live_bot(tmp_path / "data", database_url=database_url, skills={"fallback": writer}) as bot:
        auth, conversation = await bot.open()
        assert (await bot.say(auth, conversation, "tell me anything"))["skill"] == "fallback"
        before = await snapshot(bot.url)
        # Killed while streaming: the reply's own write gets a fresh connection.
        writer.started.clear()
        turn = asyncio.create_task(bot.say(auth, conversation, "and again"))
        await asyncio.wait_for(writer.started.wait(), 10)
        await _terminate_backends(database)
        reply = await turn
        assert reply["status"] == "complete" and reply["message_id"]
        # Killed in the middle of the turn's own transaction: it waits on a row lock held here.
        holder = await asyncpg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}")
        try:
            await holder.execute("BEGIN")
            await holder.execute("SELECT 1 FROM dialog_states WHERE conversation_id = $1 FOR UPDATE", conversation)
            turn = asyncio.create_task(bot.say(auth, conversation, "are you there"))
            for _ in range(100):  # until the turn's transaction waits on the lock (bounded: 10 s)
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database)
                if waiting:
                    break
                await asyncio.sleep(0.1)
            assert waiting, "the turn never reached the locked row"
            assert await _terminate_backends(database, keep=holder.get_server_pid()) >= 1
            reply = await turn
        finally:
            await holder.execute("ROLLBACK")
            await holder.close()
        assert_not_saved(reply)
        again = await bot.say(auth, conversation, "still there?")
        assert again["status"] == "complete" and again["message_id"]
        assert assert_kept(before, await snapshot(bot.url)) == 2
        assert await assert_ledger_stored(bot) == 6


class TcpCut:
    """A TCP relay in front of PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored on the same port: the network between Tandem and its database, failing."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._pipes -= {writer, up_writer}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_unreachable_is_answered_and_healthz_degrades_until_it_is_back(database_url, tmp_path) -> None:
    relay = TcpCut(int(database_url.rsplit(":", 1)[1].split("/")[0]))
    await relay.restore()
    through = database_url.replace(database_url.rsplit("@", 1)[1].split("/")[0], f"127.0.0.1:{relay.port}")
    try:
        async with live_bot(tmp_path / "data", database_url=through) as bot:
            auth, conversation = await bot.open()
            await bot.say(auth, conversation, "help")
            assert (await bot.rate(auth, conversation, 4))[0] == 201
            before = await snapshot(database_url)
            await relay.cut()
            try:
                assert_not_saved(await bot.say(auth, conversation, "help"))
                status, body = await bot.rate(auth, conversation, 1)
                assert status == 503
                assert_not_saved(body)
                assert await bot.health() == 503
            finally:
                await relay.restore()
            assert await bot.health() == 200
            again = await bot.say(auth, conversation, "help")
            assert again["status"] == "complete" and again["message_id"]
            assert assert_kept(before, await snapshot(database_url)) == 3
            bot.url = database_url
            assert await assert_ledger_stored(bot) == 5
    finally:
        if relay._server is not None:
            await relay.cut()


def _pg_cluster() -> list[str] | None:
    """The pg_ctlcluster command of the local server, when it can be run (as root) here."""
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


async def _pg_answers(timeout_s: float) -> bool:
    import asyncpg

    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            connection = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), 3)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncio.sleep(0.5)
            continue
        await connection.close()
        return True
    return False


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_server_restart_mid_conversation_loses_nothing(database_url, tmp_path) -> None:
    cluster = _pg_cluster()
    if cluster is None:
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster")
    async with live_bot(tmp_path / "data", database_url=database_url) as bot:
        auth, conversation = await bot.open()
        for stars in (2, 3):
            assert (await bot.say(auth, conversation, "help"))["message_id"]
            assert (await bot.rate(auth, conversation, stars))[0] == 201
        restart = await asyncio.create_subprocess_exec(*cluster, "restart", stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.PIPE)
        try:
            polite = 0
            while restart.returncode is None:  # the conversation goes on while the server restarts
                reply = await bot.say(auth, conversation, "help")
                if reply.get("message_id") is None:
                    assert_not_saved(reply)
                    polite += 1
                try:
                    await asyncio.wait_for(restart.wait(), 0.2)
                except TimeoutError:
                    pass
            _, errors = await restart.communicate()
            assert restart.returncode == 0, errors.decode()
        finally:
            if not await _pg_answers(30):  # never leave the shared server down
                subprocess.run([*cluster, "start"], check=False, timeout=60)
                assert await _pg_answers(60), "PostgreSQL did not come back"
        replies = [await bot.say(auth, conversation, "help") for _ in range(3)]
        assert all(r["status"] == "complete" and r["message_id"] for r in replies), replies
        assert (await bot.rate(auth, conversation, 5))[0] == 201
        assert await bot.health() == 200
        checked = await assert_ledger_stored(bot)
        assert checked >= 13, (checked, polite)  # 6 before, 7 after, and what the restart let through
