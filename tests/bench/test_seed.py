"""bench/seed.py fills a database with what it says it did, and the SQL-aggregated report agrees,
figure by figure, with a row-by-row count of the same rows (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from bench.seed import seed
from bot.storage.database import Database
from bot.storage.reports import build_report, feedback_rows
from bot.storage.schema import Conversation, Feedback, FeedbackOffer, Message, Passage, Story, User
from bot.storage.stories import StoryRepo


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _counted_by_hand(db: Database, days: int, now: datetime) -> dict:
    """The report's figures computed in Python from every row: the oracle for the SQL."""
    since = datetime.combine(now.date() - timedelta(days=days - 1), time.min, UTC)
    async with db.transaction() as session:
        conversations = (await session.execute(select(Conversation.id, Conversation.user_id,
                                                      Conversation.started_at))).all()
        messages = (await session.execute(select(Message.conversation_id, Message.author, Message.created_at,
                                                 Message.id, Message.skill, Message.flow, Message.node))).all()
        feedback = (await session.execute(select(Feedback.id, Feedback.kind, Feedback.conversation_id,
                                                 Feedback.user_id, Feedback.message_id, Feedback.value)
                                          .order_by(Feedback.id))).all()
        offers = (await session.execute(select(FeedbackOffer.kind, FeedbackOffer.answered))).all()
    user_of = {c.id: c.user_id for c in conversations}
    started_in = {c.id for c in conversations if _utc(c.started_at) >= since}
    turns_by_day, users_by_day = Counter(), defaultdict(set)
    per_conversation = defaultdict(list)
    for m in messages:
        per_conversation[m.conversation_id].append(m)
        if m.author == "user" and _utc(m.created_at) >= since:
            day = _utc(m.created_at).date().isoformat()
            turns_by_day[day] += 1
            users_by_day[day].add(user_of[m.conversation_id])
    ratings, thumbs = {}, {}
    message_of = {m.id: m for m in messages}
    for f in feedback:
        if f.kind == "rating":
            ratings[(f.conversation_id, f.user_id)] = f.value
        elif f.kind == "thumb":
            thumbs[(f.message_id, f.user_id)] = f.value
    by_skill = defaultdict(lambda: [0, 0])
    for (message_id, _), value in thumbs.items():
        by_skill[message_of[message_id].skill or "(none)"][0 if value > 0 else 1] += 1
    measured = [per_conversation[c] for c in started_in if per_conversation[c]]
    return {
        "conversations": len(conversations), "users": len({c.user_id for c in conversations}),
        "turns": sum(m.author == "user" for m in messages),
        "starts": Counter(_utc(c.started_at).date().isoformat() for c in conversations if c.id in started_in),
        "turns_by_day": turns_by_day, "users_by_day": {d: len(u) for d, u in users_by_day.items()},
        "ratings": Counter(ratings.values()), "by_skill": {k: tuple(v) for k, v in by_skill.items()},
        "offers": (sum(o.kind == "rating" for o in offers), sum(o.kind == "rating" and o.answered for o in offers)),
        "average_messages": sum(len(ms) for ms in measured) / len(measured) if measured else None,
        "average_turns": sum(sum(m.author == "user" for m in ms) for ms in measured) / len(measured)
        if measured else None,
        "average_duration": sum((max(_utc(m.created_at) for m in ms) - min(_utc(m.created_at) for m in ms))
                                .total_seconds() for ms in measured) / len(measured) if measured else None,
    }


@pytest.mark.parametrize("days", [30, 400])
async def test_the_report_agrees_with_a_row_by_row_count(database_url: str, days: int) -> None:
    db = Database(database_url)
    await db.migrate()
    now = datetime.now(UTC)
    try:
        seeded = await seed(db, messages=6000, conversations=600, stories=60, users=150, days=365, now=now)
        report = await build_report(db, days=days, now=now)
        expected = await _counted_by_hand(db, days, now)
        async with db.transaction() as session:
            stored = {table.__tablename__: await session.scalar(select(func.count()).select_from(table))
                      for table in (User, Conversation, Message, Feedback, Story, Passage)}
        exported = await feedback_rows(db)
        busiest = await StoryRepo(db).list_stories(seeded.busiest_user)
    finally:
        await db.close()
    assert stored == {"users": 150, "conversations": 600, "messages": seeded.messages, "feedback": seeded.feedback,
                      "stories": 60, "passages": seeded.passages}
    assert seeded.messages == 6000 and len(exported) == seeded.feedback
    assert (report.conversations, report.users, report.turns) == (
        expected["conversations"], expected["users"], expected["turns"])
    assert {d.day: d.conversations for d in report.by_day if d.conversations} == dict(expected["starts"])
    assert {d.day: d.turns for d in report.by_day if d.turns} == dict(expected["turns_by_day"])
    assert {d.day: d.users for d in report.by_day if d.users} == expected["users_by_day"]
    assert report.rating_distribution == {k: expected["ratings"].get(k, 0) for k in range(1, 6)}
    assert report.rating_count == sum(expected["ratings"].values()) > 0
    assert {s.key: (s.up, s.down) for s in report.thumbs_by_skill} == expected["by_skill"]
    assert (report.offers, report.offers_answered) == expected["offers"]
    assert report.average_messages == pytest.approx(expected["average_messages"])
    assert report.average_turns == pytest.approx(expected["average_turns"])
    assert report.average_duration_s == pytest.approx(expected["average_duration"], abs=0.01)
    assert report.stories.stories == 60
    assert len(busiest) >= 1 and sum(n for _, n in busiest) > 0
