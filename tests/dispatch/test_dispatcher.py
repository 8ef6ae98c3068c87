"""The dispatcher: ordering within a conversation, concurrency across them, budget, catch-all, storage."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.messages import Incoming
from bot.core.skill import Skill, Turn
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.registry import SkillRegistry
from bot.settings import DispatcherConfig
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from skills.fallback import FallbackSkill

EVENTS: list[tuple[str, str]] = []


class PrefixIntentAnnotator:
    """Test annotator: 'slow: x' -> intent slow, 'boom' -> boom, and so on."""

    name = "prefix"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        head = text.split(":", 1)[0].strip().lower()
        if head in {"slow", "boom", "stream", "hold", "echo", "stall", "meet"}:
            annotations.intent = IntentGuess(head, 0.9, self.name)
        elif head in {"cancel", "maybe cancel"}:
            # A rule said "cancel", or a classifier merely guessed it.
            annotations.intent = IntentGuess("cancel", 1.0 if head == "cancel" else 0.9,
                                             "rules" if head == "cancel" else "embedding")


class BrokenAnnotator:
    name = "broken"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if "hang" in text:
            await asyncio.sleep(60)
        raise RuntimeError("annotator bug")


class SlowSkill(Skill):
    name = "slow"
    intents = ("slow",)

    async def respond(self, turn: Turn) -> str:
        EVENTS.append(("start", turn.text))
        await asyncio.sleep(0.2)
        EVENTS.append(("end", turn.text))
        return f"done {turn.text}"


class MeetSkill(Skill):
    """Answers only once `expected` turns are inside it at the same time, so its turns can all
    finish only if the dispatcher runs them concurrently (sequential turns hit the budget)."""

    name = "meet"
    intents = ("meet",)

    def __init__(self, expected: int = 4) -> None:
        super().__init__()
        self.expected = expected
        self.inside = 0
        self.everyone_arrived = asyncio.Event()

    async def respond(self, turn: Turn) -> str:
        self.inside += 1
        EVENTS.append(("arrive", turn.text))
        if self.inside >= self.expected:
            self.everyone_arrived.set()
        await self.everyone_arrived.wait()
        return f"met {turn.text}"


class EchoSkill(Skill):
    name = "echo"
    intents = ("echo",)

    async def respond(self, turn: Turn) -> str:
        EVENTS.append(("echo", turn.text))
        return f"echo {turn.text} after {len(turn.history)} earlier"


class BoomSkill(Skill):
    name = "boom"
    intents = ("boom",)

    async def respond(self, turn: Turn) -> str:
        raise ValueError("secret internal detail")


class StreamSkill(Skill):
    name = "stream"
    intents = ("stream",)

    async def respond(self, turn: Turn):
        for word in ("one ", "two ", "three"):
            await asyncio.sleep(0.01)
            yield word


class StallSkill(Skill):
    """Streams a little, then hangs: the budget must cut it and keep what was said."""

    name = "stall"
    intents = ("stall",)

    async def respond(self, turn: Turn):
        yield "partial words"
        await asyncio.sleep(60)
        yield "never"


class HoldSkill(Skill):
    """Keeps the conversation until the user says 'done'."""

    name = "hold"
    intents = ("hold",)

    async def respond(self, turn: Turn) -> str:
        count = turn.state.get("count", 0) + 1
        turn.state["count"] = count
        if turn.text != "done":
            turn.keep()
        return f"held {count}"


@pytest.fixture
async def dispatcher(tmp_path):
    EVENTS.clear()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'd.sqlite3'}")
    await db.migrate()
    registry = SkillRegistry()
    for skill in (SlowSkill(), MeetSkill(), EchoSkill(), BoomSkill(), StreamSkill(), StallSkill(), HoldSkill(),
                  FallbackSkill()):
        registry.register(skill)
    config = DispatcherConfig(turn_timeout_s=1.0, max_text_chars=50)
    yield Dispatcher(ConversationRepo(db), registry, [BrokenAnnotator(), PrefixIntentAnnotator()], None, config)
    await db.close()


def say(dispatcher: Dispatcher, user: str, text: str):
    return dispatcher.handle_turn(Incoming("test", user, text))


async def test_turns_of_one_conversation_never_interleave(dispatcher) -> None:
    streams = [say(dispatcher, "ann", f"slow: {i}") for i in range(3)]
    replies = [await s.reply() for s in streams]
    assert [r.text for r in replies] == ["done slow: 0", "done slow: 1", "done slow: 2"]
    assert EVENTS == [(kind, f"slow: {i}") for i in range(3) for kind in ("start", "end")]


async def test_different_conversations_run_concurrently(dispatcher) -> None:
    # MeetSkill lets no turn finish before all four are inside it: run one after another,
    # the first would wait for the others until the turn budget cut it.
    streams = [say(dispatcher, f"user{i}", f"meet: {i}") for i in range(4)]
    replies = await asyncio.gather(*(s.reply() for s in streams))
    assert [r.text for r in replies] == [f"met meet: {i}" for i in range(4)]
    assert sorted(EVENTS) == [("arrive", f"meet: {i}") for i in range(4)]


async def test_a_turn_waits_for_the_previous_one_and_sees_it_in_history(dispatcher) -> None:
    first = say(dispatcher, "ann", "slow: a")
    second = say(dispatcher, "ann", "echo: b")
    assert (await second.reply()).text == "echo echo: b after 2 earlier"
    assert (await first.reply()).text == "done slow: a"


async def test_a_skill_error_gets_a_polite_answer_and_is_logged(dispatcher, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        reply = await say(dispatcher, "ann", "boom").reply()
    assert "something went wrong" in reply.text.lower()
    assert "secret internal detail" not in reply.text and "Traceback" not in reply.text
    assert reply.status == "fallback"
    record = next(r for r in caplog.records if "turn failed" in r.getMessage())
    assert reply.conversation_id in record.getMessage() and "skill=boom" in record.getMessage()
    # The conversation goes on.
    assert (await say(dispatcher, "ann", "echo: hi").reply()).text.startswith("echo")


async def test_time_budget_answers_and_keeps_partial_text(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "stall: go").reply()
    assert reply.text == "partial words"
    assert reply.status == "incomplete"
    stored = await dispatcher.repo.messages(reply.conversation_id)
    assert (stored[-1].text, stored[-1].status) == ("partial words", "incomplete")


async def test_time_budget_with_nothing_said_apologises(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "slow: x").reply()  # 0.2 s: inside the budget
    assert reply.status == "complete"
    dispatcher.config = DispatcherConfig(turn_timeout_s=0.05)
    reply = await say(dispatcher, "ann", "slow: y").reply()
    assert reply.status == "incomplete" and "too long" in reply.text


async def test_stream_yields_pieces_then_the_stored_reply(dispatcher) -> None:
    stream = say(dispatcher, "ann", "stream")
    pieces = [piece async for piece in stream]
    reply = await stream.reply()
    assert pieces == ["one ", "two ", "three"]
    assert reply.text == "one two three" and reply.message_id is not None


async def test_cancel_stops_generation_and_keeps_what_was_said(dispatcher) -> None:
    stream = say(dispatcher, "ann", "stall: go")
    async for piece in stream:
        assert piece == "partial words"
        stream.cancel()
        break
    reply = await stream.reply()
    assert reply.status == "incomplete"
    assert reply.text.startswith("partial words") and "never" not in reply.text


async def test_every_turn_is_stored_with_annotations_skill_and_latency(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "echo: hello").reply()
    messages = await dispatcher.repo.messages(reply.conversation_id)
    assert [(m.author, m.text) for m in messages] == [("user", "echo: hello"), ("bot", reply.text)]
    assert messages[1].skill == "echo" and messages[1].intent == "echo"
    assert messages[1].parent_id == messages[0].id
    assert reply.latency_ms is not None and reply.user_message_id == messages[0].id


async def test_a_broken_annotator_does_not_sink_the_turn(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "echo: x").reply()
    assert reply.skill == "echo"


async def test_unclaimed_text_goes_to_the_fallback(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "qwertyuiop").reply()
    assert reply.skill == "fallback" and "help" in reply.text.lower()


async def test_a_skill_keeps_the_conversation_until_it_releases_it(dispatcher) -> None:
    assert (await say(dispatcher, "ann", "hold").reply()).text == "held 1"
    assert (await say(dispatcher, "ann", "anything").reply()).text == "held 2"
    assert (await say(dispatcher, "ann", "done").reply()).text == "held 3"
    assert (await say(dispatcher, "ann", "anything").reply()).skill == "fallback"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x01", "x" * 51, None, 42])
async def test_bad_input_gets_a_clear_answer_and_stores_nothing(dispatcher, text) -> None:
    baseline = await say(dispatcher, "ann", "echo: keep me").reply()
    reply = await dispatcher.handle_turn(Incoming("test", "ann", text)).reply()
    assert reply.status == "rejected" and reply.text
    messages = await dispatcher.repo.messages(baseline.conversation_id)
    assert [m.text for m in messages] == ["echo: keep me", baseline.text]


async def test_a_refused_first_message_creates_no_user_or_conversation(dispatcher) -> None:
    from sqlalchemy import func, select

    from bot.storage.schema import Conversation, User

    reply = await say(dispatcher, "newcomer", "   ").reply()
    assert reply.status == "rejected" and "empty" in reply.text
    async with dispatcher.repo.db.transaction() as session:
        for table in (User, Conversation):
            assert await session.scalar(select(func.count()).select_from(table)) == 0


async def test_lone_surrogates_and_controls_are_cleaned_not_fatal(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "echo: a\ud800b\x07c").reply()
    messages = await dispatcher.repo.messages(reply.conversation_id)
    assert messages[0].text == "echo: a\ufffdbc"


async def test_a_hanging_annotator_is_skipped_within_the_budget(dispatcher) -> None:
    reply = await say(dispatcher, "ann", "echo: hang").reply()
    assert reply.skill == "echo" and reply.status == "complete"


async def test_close_waits_for_turns_in_flight(dispatcher) -> None:
    stream = say(dispatcher, "ann", "slow: last words")
    await asyncio.sleep(0)
    await dispatcher.close()
    assert stream.done
    reply = await stream.reply()
    assert [m.text for m in await dispatcher.repo.messages(reply.conversation_id)][-1] == "done slow: last words"


async def test_only_an_explicit_cancel_frees_a_held_conversation(dispatcher) -> None:
    assert (await say(dispatcher, "ann", "hold").reply()).text == "held 1"
    # A classifier's guess is not enough: the held skill gets the text.
    assert (await say(dispatcher, "ann", "maybe cancel").reply()).text == "held 2"
    reply = await say(dispatcher, "ann", "cancel").reply()
    assert reply.skill == "fallback" and "cancelled" in reply.text.lower()


async def test_past_the_turns_in_flight_limit_a_turn_is_refused_at_once_and_stores_nothing(dispatcher) -> None:
    dispatcher.admission.max_total = 2
    first, second = say(dispatcher, "ann", "slow: one"), say(dispatcher, "bob", "slow: two")
    refused = say(dispatcher, "cid", "echo: three")
    busy = await refused.reply()
    assert busy.status == "busy" and "again" in busy.text
    assert await refused.user_message_id() is None
    assert [(await s.reply()).status for s in (first, second)] == ["complete", "complete"]
    # Once the load is gone, the same user is served; the refused message was never stored.
    reply = await say(dispatcher, "cid", "echo: three").reply()
    assert reply.status == "complete"
    assert [m.text for m in await dispatcher.repo.messages(reply.conversation_id)] == ["echo: three", reply.text]


async def test_one_greedy_user_is_refused_past_their_share_while_others_are_served(dispatcher) -> None:
    dispatcher.admission.max_total, dispatcher.admission.max_per_user = 10, 2
    greedy = [say(dispatcher, "ann", f"slow: {i}") for i in range(5)]
    other = say(dispatcher, "bob", "echo: hello")
    statuses = [(await s.reply()).status for s in greedy]
    assert statuses == ["complete", "complete", "busy", "busy", "busy"]
    assert (await other.reply()).status == "complete"


async def test_a_turn_addressed_to_a_skill_goes_there_and_leaves_a_held_skill_holding(dispatcher) -> None:
    from skills.language import LanguageSkill

    dispatcher.skills.register(LanguageSkill())
    assert (await say(dispatcher, "ann", "hold: start").reply()).text == "held 1"
    switched = await dispatcher.handle_turn(Incoming("test", "ann", "/language ru", skill="language",
                                                     metadata={"language": "ru"})).reply()
    assert switched.skill == "language" and switched.text == "Хорошо, говорим по-русски."
    state = await dispatcher.repo.load_state(switched.conversation_id)
    assert state.slots["language"] == "ru" and state.active_skill == "hold"
    assert (await say(dispatcher, "ann", "more").reply()).text == "held 2"  # the held skill still has it
