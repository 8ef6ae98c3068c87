"""Seeds a large Tandem database for the data-at-scale benchmark: users, conversations with their
messages, feedback, rating offers and stories with passages, spread over the past year.

Run: .venv/bin/python -m bench.seed --url URL [--messages 1000000] [--conversations 100000]
     [--stories 10000] [--users 20000] [--days 365] [--seed 1]

The URL's database is migrated first and must be empty. Rows go in with explicit ids, in
executemany batches of BATCH rows (one round trip per batch, not per row); PostgreSQL's id
sequences are moved past them afterwards and both databases are ANALYZEd, as a database in
production would be. The figures are deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from bot.storage.database import Database, safe_url
from bot.storage.schema import Conversation, Feedback, FeedbackOffer, Message, Passage, Story, User

BATCH = 5000
SKILLS = ("smalltalk", "help", "story", "jokes", "fun_facts", "graph", "fallback")
NODES = (("onboarding", "greet"), ("onboarding", "ask_name"), ("feedback", "ask_rating"), ("help", "menu"))
WORDS = ("the", "fox", "river", "lantern", "night", "door", "winter", "song", "stone", "letter", "road", "moon")


@dataclass(frozen=True)
class Seeded:
    """What went in: the benchmark's and the tests' known totals."""

    users: int
    conversations: int
    messages: int
    user_messages: int
    feedback: int
    stories: int
    passages: int
    busiest_user: int  # the user with the most stories


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert(db: Database, table, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for batch in _batches(rows):
        async with db.transaction() as session:
            await session.execute(insert(table), batch)
        count += len(batch)
    return count


async def seed(db: Database, *, messages: int = 1_000_000, conversations: int = 100_000, stories: int = 10_000,
               users: int = 20_000, days: int = 365, seed: int = 1, now: datetime | None = None) -> Seeded:
    """Fill a migrated, empty database; returns the totals."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    async with db.transaction() as session:
        if await session.scalar(select(func.count()).select_from(Message)):
            raise ValueError("the database already holds messages: seed an empty one")

    def user_rows():
        for uid in range(1, users + 1):
            anonymous = uid % 3 != 0  # two in three come from the web widget or the API
            created = start + timedelta(seconds=rng.random() * days * 86400)
            yield {"id": uid, "channel": "web" if anonymous else "telegram", "external_id": f"seed-{uid}",
                   "token_hash": f"{uid:064x}" if anonymous else None, "created_at": created,
                   "last_seen_at": created}

    await _insert(db, User.__table__, user_rows())

    per_conversation = max(2, messages // conversations)
    conversation_users = [rng.randint(1, users) for _ in range(conversations)]
    starts = sorted(start + timedelta(seconds=rng.random() * days * 86400) for _ in range(conversations))
    counts = {"messages": 0, "user": 0, "feedback": 0}

    # One open conversation per user and channel (uq_conversations_open): each user's last one.
    last_of_user = {uid: index for index, uid in enumerate(conversation_users)}

    def conversation_rows():
        for index in range(conversations):
            yield {"id": f"{index:032x}", "user_id": conversation_users[index], "channel": "web",
                   "started_at": starts[index], "updated_at": starts[index],
                   "ended_at": None if last_of_user[conversation_users[index]] == index
                   else starts[index] + timedelta(hours=1)}

    await _insert(db, Conversation.__table__, conversation_rows())

    feedback_rows: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []

    def message_rows():
        message_id = 0
        for index in range(conversations):
            cid, uid, at = f"{index:032x}", conversation_users[index], starts[index]
            parent = None
            for k in range(per_conversation):
                message_id += 1
                author = "user" if k % 2 == 0 else "bot"
                row = {"id": message_id, "conversation_id": cid, "parent_id": parent, "author": author,
                       "text": _sentence(rng, rng.randint(3, 14)), "status": "complete",
                       "created_at": at + timedelta(seconds=20 * k + rng.random() * 10),
                       "skill": None, "flow": None, "node": None}
                if author == "bot":
                    row["skill"] = rng.choice(SKILLS)
                    if row["skill"] == "graph":
                        row["flow"], row["node"] = rng.choice(NODES)
                    if rng.random() < 0.1:
                        feedback_rows.append({"conversation_id": cid, "message_id": message_id, "user_id": uid,
                                              "kind": "thumb", "value": rng.choice((1, 1, -1)), "comment": None, "channel": "web",
                                              "created_at": row["created_at"] + timedelta(seconds=5)})
                else:
                    counts["user"] += 1
                counts["messages"] += 1
                parent = message_id
                yield row
            if rng.random() < 0.3:
                rated = rng.random() < 0.6
                offers.append({"conversation_id": cid, "kind": "rating", "channel": "web", "answered": rated,
                               "created_at": at + timedelta(minutes=5)})
                if rated:
                    comment = _sentence(rng, 6) if rng.random() < 0.2 else None
                    feedback_rows.append({"conversation_id": cid, "message_id": None, "user_id": uid,
                                          "kind": "rating", "value": rng.randint(1, 5), "comment": comment,
                                          "channel": "web", "created_at": at + timedelta(minutes=6)})

    await _insert(db, Message.__table__, message_rows())
    counts["feedback"] = await _insert(db, Feedback.__table__, iter(feedback_rows))
    await _insert(db, FeedbackOffer.__table__, iter(offers))

    story_users = [rng.randint(1, users) for _ in range(stories)]
    passages = 0

    def story_rows():
        for sid in range(1, stories + 1):
            created = start + timedelta(seconds=rng.random() * days * 86400)
            yield {"id": sid, "user_id": story_users[sid - 1], "title": _sentence(rng, 3)[:-1], "language": "en",
                   "memory": "", "author_note": "", "settings": {}, "cursor": {}, "created_at": created,
                   "updated_at": created}

    await _insert(db, Story.__table__, story_rows())

    def passage_rows():
        nonlocal passages
        pid = 0
        for sid in range(1, stories + 1):
            parent, group = None, 0
            for k in range(rng.randint(4, 16)):
                pid += 1
                candidate = k > 0 and rng.random() < 0.3
                group += candidate
                passages += 1
                yield {"id": pid, "story_id": sid, "parent_id": parent, "author": "user" if k == 0 else "model",
                       "text": _sentence(rng, rng.randint(20, 60)), "status": "complete",
                       "candidate_group": group if candidate else None, "chosen_at": None, "source_id": None,
                       "rating": rng.choice((None, None, None, 1, -1)), "created_at": start}
                parent = pid

    await _insert(db, Passage.__table__, passage_rows())
    await _finish(db)
    busiest = Counter(story_users).most_common(1)[0][0] if stories else 0
    return Seeded(users, conversations, counts["messages"], counts["user"], counts["feedback"], stories, passages,
                  busiest)


async def _finish(db: Database) -> None:
    """Move PostgreSQL's id sequences past the explicit ids, and gather planner statistics."""
    async with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            for table in ("users", "messages", "feedback", "feedback_offers", "stories", "passages"):
                await connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1)) FROM {table}"))
    if db.engine.dialect.name == "postgresql":
        async with db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("ANALYZE"))
    else:
        async with db.engine.begin() as connection:
            await connection.execute(text("ANALYZE"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of an empty database")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--stories", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    async def go() -> Seeded:
        db = Database(args.url)
        try:
            await db.migrate()
            return await seed(db, messages=args.messages, conversations=args.conversations, stories=args.stories,
                              users=args.users, days=args.days, seed=args.seed)
        finally:
            await db.close()

    started = time.perf_counter()
    try:
        seeded = asyncio.run(go())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"seeded {safe_url(args.url)} in {time.perf_counter() - started:.0f} s: {seeded}")


if __name__ == "__main__":
    main()
