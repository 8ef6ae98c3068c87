"""The turn relay over a real Redis: a resend answered by another dispatcher (as another worker
would) streams the first copy's reply as it is written, then gets the whole stored reply; a late
follower starts from the text so far; a Redis that is down changes nothing but the streaming."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.messages import Incoming
from bot.core.skill import Skill, Turn
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.registry import SkillRegistry
from bot.dispatch.relay_redis import RedisTurnRelay
from bot.settings import DispatcherConfig
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from skills.fallback import FallbackSkill

WORDS = ["Once ", "upon ", "a ", "time"]


class StreamAnnotator:
    name = "stream"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if text.startswith("stream"):
            annotations.intent = IntentGuess("stream", 0.9, "rules")


class StreamSkill(Skill):
    """Writes its words one by one, and the last only once the test lets it."""

    name = "stream"
    intents = ("stream",)
    last_word = asyncio.Event()

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        for word in WORDS[:-1]:
            yield word
            await asyncio.sleep(0.05)
        await StreamSkill.last_word.wait()
        yield WORDS[-1]


def relay(url: str, prefix: str) -> RedisTurnRelay:
    return RedisTurnRelay(url, first_after_s=0.05, every_s=0.02, key_prefix=prefix)


def dispatcher(db: Database, turn_relay: RedisTurnRelay | None) -> Dispatcher:
    registry = SkillRegistry()
    registry.register(StreamSkill())
    registry.register(FallbackSkill())
    return Dispatcher(ConversationRepo(db), registry, [StreamAnnotator()], None,
                      DispatcherConfig(turn_timeout_s=20), relay=turn_relay)


@pytest.fixture
async def db(migrated_db: Database) -> Database:
    StreamSkill.last_word = asyncio.Event()
    return migrated_db


async def collect(stream) -> list[str]:
    return [piece async for piece in stream]


async def until(check, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_resend_to_another_dispatcher_streams_the_first_copys_reply(db: Database, redis_url: str) -> None:
    prefix = f"test-relay-{uuid.uuid4().hex}"
    one, two = dispatcher(db, relay(redis_url, prefix)), dispatcher(db, relay(redis_url, prefix))
    try:
        first = one.handle_turn(Incoming("test", "ann", "stream please", client_message_id="c1"))
        first_pieces = asyncio.create_task(collect(first))
        await first.user_message_id()
        again = two.handle_turn(Incoming("test", "ann", "stream please", client_message_id="c1"))
        relayed: list[str] = []

        async def follow() -> None:
            async for piece in again:
                relayed.append(piece)

        following = asyncio.create_task(follow())
        # What the first worker wrote arrives before its turn ends: streamed, not only stored.
        await until(lambda: "".join(relayed) == "".join(WORDS[:-1]))
        assert not again.done
        StreamSkill.last_word.set()
        reply, replayed = await first.reply(), await again.reply()
        await following
        assert replayed.duplicate and replayed.text == reply.text == "".join(WORDS)
        assert "".join(await first_pieces) == reply.text
        assert len(await one.repo.messages(reply.conversation_id)) == 2  # answered once
    finally:
        await one.relay.close()
        await two.relay.close()


async def test_a_follower_that_comes_late_starts_from_the_text_so_far(redis_url: str) -> None:
    turn_relay = relay(redis_url, f"test-relay-{uuid.uuid4().hex}")
    try:
        publisher = turn_relay.publisher(7)
        publisher.add("Hello ")
        publisher.add("there")
        await asyncio.sleep(0.2)  # published by now
        ended = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def follow() -> None:
            async for text in turn_relay.follow(7, ended):
                seen.append(text)

        following = asyncio.create_task(follow())
        await until(lambda: seen == ["Hello there"])
        publisher.add(", friend")
        await until(lambda: seen[-1] == "Hello there, friend")
        ended.set_result(None)
        await asyncio.wait_for(following, 2)
        publisher.close()
    finally:
        await turn_relay.close()


async def test_a_turn_that_ends_quickly_publishes_nothing(redis_url: str) -> None:
    prefix = f"test-relay-{uuid.uuid4().hex}"
    turn_relay = RedisTurnRelay(redis_url, first_after_s=0.2, key_prefix=prefix)
    try:
        publisher = turn_relay.publisher(8)
        publisher.add("Here is what I can do.")
        publisher.close()  # the turn ended before the first publish was due
        await asyncio.sleep(0.3)
        assert await turn_relay._redis.get(f"{prefix}:8") is None
    finally:
        await turn_relay.close()


async def test_a_redis_that_is_down_costs_only_the_streaming(db: Database, caplog) -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens there
    one, two = dispatcher(db, relay(down, "x")), dispatcher(db, relay(down, "x"))
    try:
        StreamSkill.last_word.set()
        with caplog.at_level(logging.WARNING, logger="bot.dispatch.relay_redis"):
            first = one.handle_turn(Incoming("test", "ann", "stream please", client_message_id="c1"))
            await first.user_message_id()
            again = two.handle_turn(Incoming("test", "ann", "stream please", client_message_id="c1"))
            reply, replayed = await first.reply(), await again.reply()
        assert reply.status == "complete" and replayed.duplicate and replayed.text == reply.text
        lines = [r for r in caplog.records if r.name == "bot.dispatch.relay_redis"]
        assert 1 <= len(lines) <= 2  # at most one a process per interval, and no traceback
        assert all(r.exc_info is None for r in lines)
    finally:
        await one.relay.close()
        await two.relay.close()
