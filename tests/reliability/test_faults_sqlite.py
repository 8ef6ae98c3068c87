"""SQLite faults: a write lock held past the busy timeout (HTTP, widget, mid-turn, mid story), the data
folder moved away, the file replaced by a backup or made unwritable. Each time the bot answers politely,
recovers without a restart, and every record it acknowledged stays as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.dispatch.dispatcher import CANNOT_SAVE, NOT_SAVED
from tests.reliability.faults_support import (
    BUSY_TIMEOUT_S, SlowWriterSkill, live_bot, snapshot, assert_kept, assert_ledger_stored,
    no_traceback, assert_not_saved, sqlite_write_lock, sqlite_path,
)


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
        assert (await bot.say(auth, conversation, "xqzv kvvt"))["skill"] == "fallback"
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
