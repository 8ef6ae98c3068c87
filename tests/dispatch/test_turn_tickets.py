"""The turn runner over SQL, on SQLite and PostgreSQL: two transactions a turn, client message ids as
idempotency keys, one open conversation per user and channel, tickets that order one conversation's
turns across dispatchers (as two processes would run them), lapsed tickets, a user deleted mid-turn."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.core.annotations import Annotations, IntentGuess
from bot.core.messages import Incoming
from bot.core.skill import Skill, Turn
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.registry import SkillRegistry
from bot.settings import DispatcherConfig
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.schema import Conversation, Message, User, utcnow
from skills.fallback import FallbackSkill


class HeadAnnotator:
    """'slow: x' -> intent slow, 'echo: x' -> echo."""

    name = "head"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        head = text.split(":", 1)[0].strip()
        if head in ("slow", "echo", "gate"):
            annotations.intent = IntentGuess(head, 0.9, "rules")


class SlowSkill(Skill):
    name = "slow"
    intents = ("slow",)

    async def respond(self, turn: Turn) -> str:
        await asyncio.sleep(0.2)
        return f"done {turn.text}"


class EchoSkill(Skill):
    """Answers with the text and the user messages it saw before it, so order shows in the answers."""

    name = "echo"
    intents = ("echo",)

    async def respond(self, turn: Turn) -> str:
        seen = [h.text for h in turn.history if h.author == "user"]
        return f"{turn.text} after {seen[-1] if seen else '-'}"


class GateSkill(Skill):
    """Waits until the test opens the gate: a turn that is still running when the test acts."""

    name = "gate"
    intents = ("gate",)
    opened = asyncio.Event()
    entered = asyncio.Event()

    async def respond(self, turn: Turn) -> str:
        GateSkill.entered.set()
        await GateSkill.opened.wait()
        return "through the gate"


def make_dispatcher(db: Database, **config) -> Dispatcher:
    registry = SkillRegistry()
    for skill in (SlowSkill(), EchoSkill(), GateSkill(), FallbackSkill()):
        registry.register(skill)
    return Dispatcher(ConversationRepo(db), registry, [HeadAnnotator()], None,
                      DispatcherConfig(turn_timeout_s=10, **config))


@pytest.fixture
async def db(migrated_db: Database) -> Database:
    GateSkill.opened, GateSkill.entered = asyncio.Event(), asyncio.Event()
    return migrated_db


@contextlib.contextmanager
def counting_transactions(db: Database):
    counter = {"n": 0}
    original = db.transaction

    def counted(*args, **kwargs):
        counter["n"] += 1
        return original(*args, **kwargs)

    db.transaction = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        db.transaction = original  # type: ignore[method-assign]


async def test_a_chat_turn_costs_two_transactions(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    await dispatcher.handle_turn(Incoming("test", "ann", "echo: warm")).reply()  # the user and conversation exist
    with counting_transactions(db) as first_sight:
        await dispatcher.handle_turn(Incoming("test", "newcomer", "echo: hi")).reply()
    with counting_transactions(db) as counter:
        reply = await dispatcher.handle_turn(Incoming("test", "ann", "echo: again")).reply()
    with counting_transactions(db) as by_id:
        await dispatcher.handle_turn(Incoming("test", "ann", "echo: by id", conversation_id=reply.conversation_id)
                                     ).reply()
    assert (first_sight["n"], counter["n"], by_id["n"]) == (2, 2, 2)


async def test_a_client_message_id_is_answered_once_and_replayed_after(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    first = await dispatcher.handle_turn(Incoming("test", "ann", "echo: one", client_message_id="m-1")).reply()
    again = await dispatcher.handle_turn(Incoming("test", "ann", "echo: one", client_message_id="m-1")).reply()
    assert not first.duplicate and again.duplicate
    assert (again.text, again.message_id, again.user_message_id) == (first.text, first.message_id,
                                                                     first.user_message_id)
    texts = [m.text for m in await dispatcher.repo.messages(first.conversation_id)]
    assert texts == ["echo: one", first.text]
    # The same id in another conversation is another message.
    repo = dispatcher.repo
    other = await repo.open_conversation(await repo.user_for("test", "ann"), "test")
    fresh = await dispatcher.handle_turn(Incoming("test", "ann", "echo: two", conversation_id=other,
                                                  client_message_id="m-1")).reply()
    assert not fresh.duplicate and fresh.conversation_id == other


async def test_a_resend_while_the_first_copy_runs_gets_its_answer(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    first = dispatcher.handle_turn(Incoming("test", "ann", "slow: x", client_message_id="c"))
    second = dispatcher.handle_turn(Incoming("test", "ann", "slow: x", client_message_id="c"))
    a, b = await first.reply(), await second.reply()
    assert b.duplicate and b.text == a.text == "done slow: x"
    assert len(await dispatcher.repo.messages(a.conversation_id)) == 2


async def test_first_messages_at_once_make_one_user_and_one_open_conversation(db: Database) -> None:
    one, two = make_dispatcher(db), make_dispatcher(db)  # two dispatchers: as two processes would
    replies = await asyncio.gather(*(d.handle_turn(Incoming("tg", "42", f"echo: {i}", user_name="Ann")).reply()
                                     for i, d in enumerate([one, two, one, two])))
    assert len({r.conversation_id for r in replies}) == 1
    async with db.transaction() as session:
        users = await session.scalar(select(func.count()).select_from(User).where(User.external_id == "42"))
        open_ = await session.scalar(select(func.count()).select_from(Conversation)
                                     .where(Conversation.ended_at.is_(None)))
    assert (users, open_) == (1, 1)


async def test_turns_sent_alternately_to_two_dispatchers_are_answered_in_order(db: Database) -> None:
    one, two = make_dispatcher(db), make_dispatcher(db)
    opened = await one.handle_turn(Incoming("test", "ann", "echo: 0")).reply()
    streams = []
    for i in range(1, 7):
        dispatcher = one if i % 2 else two
        streams.append(dispatcher.handle_turn(Incoming("test", "ann", f"echo: {i}",
                                                       conversation_id=opened.conversation_id)))
        # Each is sent once the one before is stored (acknowledged), not answered: all run at once.
        await streams[-1].user_message_id()
    replies = [await s.reply() for s in streams]
    assert [r.text for r in replies] == [f"echo: {i} after echo: {i - 1}" for i in range(1, 7)]
    messages = await one.repo.messages(opened.conversation_id)
    assert [m.author for m in messages].count("bot") == 7


async def test_a_running_turn_holds_the_next_one_in_another_dispatcher(db: Database) -> None:
    one, two = make_dispatcher(db), make_dispatcher(db)
    gate = one.handle_turn(Incoming("test", "ann", "gate: a"))
    await GateSkill.entered.wait()
    after = two.handle_turn(Incoming("test", "ann", "echo: b"))
    await asyncio.sleep(0.3)
    assert not after.done  # it waits for the turn before it, though another dispatcher runs that
    GateSkill.opened.set()
    assert (await gate.reply()).text == "through the gate"
    assert (await after.reply()).text == "echo: b after gate: a"


async def test_the_ticket_of_a_turn_whose_process_died_lapses(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    opened = await dispatcher.handle_turn(Incoming("test", "ann", "echo: first")).reply()
    # A turn taken by a process that then died: stored, never answered, its lease over.
    repo = dispatcher.repo
    dead = await repo.open_turn(channel="test", external_id="ann", conversation_id=opened.conversation_id,
                                text="echo: lost", lease_s=60)
    async with db.transaction() as session:
        await session.execute(update(Message).where(Message.id == dead.user_message_id)
                              .values(pending_until=utcnow() - timedelta(seconds=1)))
    reply = await dispatcher.handle_turn(Incoming("test", "ann", "echo: next")).reply()
    assert reply.status == "complete" and reply.text == "echo: next after echo: lost"


async def test_a_user_deleted_mid_turn_gets_a_clear_answer(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    gate = dispatcher.handle_turn(Incoming("test", "ann", "gate: x"))
    await GateSkill.entered.wait()
    await dispatcher.repo.delete_user(await dispatcher.repo.user_for("test", "ann"))
    GateSkill.opened.set()
    reply = await gate.reply()
    assert reply.status == "rejected" and "does not exist" in reply.text


async def test_a_conversation_named_by_id_must_be_the_callers(db: Database) -> None:
    dispatcher = make_dispatcher(db)
    ann = await dispatcher.handle_turn(Incoming("test", "ann", "echo: mine")).reply()
    stolen = await dispatcher.handle_turn(Incoming("test", "bob", "echo: yours?",
                                                   conversation_id=ann.conversation_id)).reply()
    assert stolen.status == "rejected"
    owner = await dispatcher.repo.owner_of(ann.conversation_id)
    wrong_owner = await dispatcher.handle_turn(Incoming("web", "x", "echo: hi", conversation_id=ann.conversation_id,
                                                        owner_id=owner + 1)).reply()
    right_owner = await dispatcher.handle_turn(Incoming("web", "x", "echo: hi", conversation_id=ann.conversation_id,
                                                        owner_id=owner)).reply()
    assert wrong_owner.status == "rejected" and right_owner.status == "complete"
    assert [m.text for m in await dispatcher.repo.messages(ann.conversation_id)][-2:] == ["echo: hi", right_owner.text]
