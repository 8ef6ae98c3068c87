"""Two `tandem run` processes on one PostgreSQL database, as real processes: one conversation's
messages sent at once, alternately to both, are each answered once and strictly in order; a worker
SIGKILLed mid-turn loses nothing acknowledged and the other keeps serving (the dead turn's ticket
lapses); one greedy user is refused past their share while another user is served; one story's
actions sent to both at once run one at a time (the story's lease), so its passages form one chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_AVAILABLE, _create_pg_database, _drop_pg_database
from tests.models.conftest import needs_llama_cpp, needs_smollm2
from tests.reliability.test_faults_kill import TandemProcess

pytestmark = [
    needs_smollm2, needs_llama_cpp, pytest.mark.slow, pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="needs the PostgreSQL server at 127.0.0.1:5432"),
]

LEASE_S = 3  # a dead turn's ticket lapses this long after its last renewal
# Small talk: generative, so a turn lasts long enough for the other server to try to overtake it.
CHAT = ["tell me something nice", "what do you like to do?", "how was your day?", "say something funny",
        "what is your favourite colour?", "do you like rain?"]


@pytest.fixture
async def servers(tmp_path: Path, subprocess_env: dict[str, str]) -> AsyncIterator[tuple[list[TandemProcess], str]]:
    name, url = await _create_pg_database()
    processes = []
    try:
        for index in range(2):
            env = {**subprocess_env, "TANDEM_DATABASE_URL": url, "TANDEM_DATA_DIR": str(tmp_path / f"data{index}"),
                   "TANDEM_DISPATCHER__TURN_LEASE_S": str(LEASE_S),
                   "TANDEM_DISPATCHER__MAX_TURNS_IN_FLIGHT_PER_USER": "8"}
            process = TandemProcess(env, tmp_path / f"tandem{index}.log")
            await process.start()  # one after the other: the first migrates, the second finds it done
            processes.append(process)
        yield processes, url
    finally:
        for process in processes:
            await process.stop()
        await _drop_pg_database(name)


async def post(session: aiohttp.ClientSession, base: str, path: str, body: dict, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.post(f"{base}{path}", json=body, headers=headers) as response:
        return response.status, await response.json()


async def rows(url: str, sql: str, **params) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


async def test_one_conversation_over_two_servers_is_answered_once_and_in_order(servers) -> None:
    (one, two), url = servers
    async with aiohttp.ClientSession() as session:
        _, opened = await post(session, one.base, "/api/conversations", {})
        conversation, token = opened["conversation_id"], opened["token"]
        path = f"/api/conversations/{conversation}/messages"
        answers = await asyncio.gather(*(
            post(session, (one, two)[i % 2].base, path, {"text": words, "client_id": f"m{i}"}, token)
            for i, words in enumerate(CHAT)
        ))
    assert all(status == 200 for status, _ in answers), answers
    stored = await rows(url, "SELECT id, parent_id, author, pending_until, client_id FROM messages "
                             "WHERE conversation_id = :c ORDER BY id", c=conversation)
    users = [r.id for r in stored if r.author == "user"]
    replies = {r.parent_id: r.id for r in stored if r.author == "bot"}
    assert len(users) == len(CHAT) and len(replies) == len(CHAT)  # each answered exactly once
    assert all(r.pending_until is None for r in stored)
    # Strictly in order: taken in the order the database received them, each answered before the
    # next began, whichever server took it (without tickets the two servers would overlap).
    reply_ids = [replies[u] for u in users]
    assert reply_ids == sorted(reply_ids)
    state = await rows(url, "SELECT turn_count FROM dialog_states WHERE conversation_id = :c", c=conversation)
    assert state[0].turn_count == len(CHAT)  # no turn overwrote another's state
    # The same client id again, to the other server: the stored answer, nothing stored twice.
    async with aiohttp.ClientSession() as session:
        status, again = await post(session, two.base, path, {"text": CHAT[0], "client_id": "m0"}, token)
    first = next(r.id for r in stored if r.client_id == "m0")
    assert status == 200 and again["duplicate"] and again["message_id"] == replies[first]


async def test_a_server_killed_mid_turn_loses_nothing_acknowledged(servers) -> None:
    (one, two), url = servers
    async with aiohttp.ClientSession() as session:
        _, opened = await post(session, one.base, "/api/conversations", {})
        conversation, token = opened["conversation_id"], opened["token"]
        path = f"/api/conversations/{conversation}/messages"
        status, first = await post(session, one.base, path, {"text": "help"}, token)
        assert status == 200
        for attempt in range(5):  # the kill must come while the turn runs: a quick answer is tried again
            client_id = f"k{attempt}"
            dying = asyncio.create_task(post(session, one.base, path, {"text": CHAT[0], "client_id": client_id},
                                             token))
            for _ in range(400):  # until the dying server has taken the message (its ticket is stored)
                if await rows(url, "SELECT id FROM messages WHERE client_id = :k AND pending_until IS NOT NULL",
                              k=client_id) or dying.done():
                    break
                await asyncio.sleep(0.02)
            await one.kill()
            try:
                await dying
            except aiohttp.ClientError:
                break  # killed mid-turn
            await one.start()
        else:
            pytest.fail("every turn finished before the kill")
        # The other server serves another user at once, and this conversation once the ticket lapses.
        _, other = await post(session, two.base, "/api/conversations", {})
        status, help_ = await post(session, two.base, f"/api/conversations/{other['conversation_id']}/messages",
                                   {"text": "help"}, other["token"])
        assert status == 200 and help_["status"] == "complete"
        status, after = await post(session, two.base, path, {"text": "help", "client_id": "after"}, token)
        assert status == 200 and after["status"] == "complete"
        # The message the dead server took, sent again (the client never got its answer): answered now.
        status, resent = await post(session, two.base, path, {"text": CHAT[0], "client_id": client_id}, token)
        assert status == 200 and resent["text"]
    stored = await rows(url, "SELECT id, author, text FROM messages WHERE conversation_id = :c ORDER BY id",
                        c=conversation)
    assert first["message_id"] in [r.id for r in stored]  # what was acknowledged is there
    killed = await rows(url, "SELECT id FROM messages WHERE client_id = :k", k=client_id)
    assert len(killed) == 1  # taken once, though sent twice
    replies = await rows(url, "SELECT id FROM messages WHERE parent_id = :m AND author = 'bot'", m=killed[0].id)
    assert len(replies) == 1  # and answered once, by the server that lived


async def test_a_greedy_user_is_refused_past_their_share_and_others_are_served(servers) -> None:
    (one, two), _ = servers
    async with aiohttp.ClientSession() as session:
        _, greedy = await post(session, one.base, "/api/conversations", {})
        _, calm = await post(session, one.base, "/api/conversations", {})
        path = f"/api/conversations/{greedy['conversation_id']}/messages"
        flood = [asyncio.create_task(post(session, one.base, path, {"text": CHAT[i % len(CHAT)]}, greedy["token"]))
                 for i in range(16)]
        await asyncio.sleep(0.3)
        status, answer = await post(session, one.base, f"/api/conversations/{calm['conversation_id']}/messages",
                                    {"text": "help"}, calm["token"])
        statuses = [s for s, _ in await asyncio.gather(*flood)]
    assert status == 200 and answer["status"] == "complete"
    assert statuses.count(503) >= 16 - 8 and statuses.count(200) >= 1


async def test_one_storys_actions_over_two_servers_run_one_at_a_time(servers) -> None:
    (one, two), url = servers
    async with aiohttp.ClientSession() as session:
        _, opened = await post(session, one.base, "/api/conversations", {})
        token = opened["token"]
        status, started = await post(session, one.base, "/api/stories", {"text": "The ferry left at dawn."}, token)
        assert status == 201
        story = started["story"]["id"]
        # A passage generated on one server while the user's own passages go to both.
        generating = asyncio.create_task(post(session, one.base, f"/api/stories/{story}/continue",
                                              {"candidates": 1}, token))
        await asyncio.sleep(0.2)
        writes = await asyncio.gather(*(
            post(session, (two, one)[i % 2].base, f"/api/stories/{story}/passages", {"text": f"Then {i}."}, token)
            for i in range(4)
        ))
        status, _ = await generating
    assert status == 200 and all(status == 201 for status, _ in writes), writes
    stored = await rows(url, "SELECT id, parent_id FROM passages WHERE story_id = :s ORDER BY id", s=story)
    parents = [r.parent_id for r in stored]
    # One chain: every passage but the first follows exactly one other, and none is followed twice
    # (without the lease, two writes that read the same head would both follow it).
    assert len(stored) >= 5 and parents[0] is None and len(set(parents)) == len(parents)
    head = await rows(url, "SELECT head_id FROM stories WHERE id = :s", s=story)
    assert head[0].head_id == stored[-1].id
