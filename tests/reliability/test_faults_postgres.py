"""PostgreSQL faults: connections killed between and inside turns, the address unreachable, and the
server really restarted. Each time the bot answers politely, recovers without a restart, and every
record it acknowledged stays as it was."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL
from tests.reliability.faults_support import (
    SlowWriterSkill, live_bot, snapshot, assert_kept, assert_ledger_stored, assert_not_saved,
)


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
        assert (await bot.say(auth, conversation, "xqzv kvvt"))["skill"] == "fallback"
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
                # pg_stat_activity is read once per transaction and then cached: without clearing
                # it, a first look taken before the turn arrived would be all the holder ever saw.
                await holder.execute("SELECT pg_stat_clear_snapshot()")
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
                    if reply.get("user_message_id") is None:
                        assert_not_saved(reply)  # the database failed before the turn began
                    else:
                        # The user message was stored and the answer made, then the restart struck the
                        # turn's second transaction: the answer is shown without an id (as on SQLite).
                        assert reply["status"] in ("complete", "fallback") and "Traceback" not in reply["text"]
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
