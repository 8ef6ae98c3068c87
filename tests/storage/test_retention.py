"""Retention deletes idle anonymous users with no data, and nothing else, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.storage.conversations import ConversationRepo, NewMessage
from bot.storage.database import Database
from bot.storage.feedback import FeedbackRepo
from bot.storage.retention import delete_idle_anonymous_users
from bot.storage.schema import Conversation, User, utcnow
from bot.storage.stories import StoryRepo


async def test_only_idle_anonymous_users_without_data_go(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    try:
        repo = ConversationRepo(db)
        idle, idle_token = await repo.create_token_user("web")  # opened the widget, wrote nothing
        empty_conversation, _ = await repo.create_token_user("web")  # a conversation, no message
        await repo.open_conversation(empty_conversation, "web")
        wrote, _ = await repo.create_token_user("web")
        await repo.add_user_message(await repo.open_conversation(wrote, "web"), NewMessage("user", "hello"))
        storyteller, _ = await repo.create_token_user("api")
        await StoryRepo(db).create_story(storyteller, "Mine")
        rater, _ = await repo.create_token_user("web")
        await FeedbackRepo(db).add_rating(await repo.open_conversation(rater, "web"), rater, 5)
        recent, _ = await repo.create_token_user("web")
        telegram = await repo.user_for("telegram", "42")  # no token: not anonymous, never deleted
        old = utcnow() - timedelta(days=40)
        async with db.transaction() as session:
            await session.execute(update(User).where(User.id != recent).values(last_seen_at=old))

        assert await delete_idle_anonymous_users(db, 30) == 2
        async with db.transaction() as session:
            left = set(await session.scalars(select(User.id)))
            conversations = set(await session.scalars(select(Conversation.user_id)))
        assert left == {wrote, storyteller, rater, recent, telegram}
        assert empty_conversation not in conversations  # its empty conversation went with it
        assert await repo.user_by_token(idle_token) is None
        assert await delete_idle_anonymous_users(db, 30) == 0  # nothing more to do
        assert await delete_idle_anonymous_users(db, 50) == 0  # 40 days is within 50
    finally:
        await db.close()


async def test_a_backlog_goes_in_batches(database_url: str, monkeypatch) -> None:
    from bot.storage import retention

    monkeypatch.setattr(retention, "BATCH", 3)
    db = Database(database_url)
    await db.migrate()
    try:
        repo = ConversationRepo(db)
        for _ in range(7):
            await repo.create_token_user("web")
        assert await delete_idle_anonymous_users(db, 1, now=utcnow() + timedelta(days=2)) == 7
        async with db.transaction() as session:
            assert list(await session.scalars(select(User.id))) == []
    finally:
        await db.close()


async def test_the_server_runs_retention_while_it_is_up(tandem) -> None:
    """init_app starts the pass with the server: an idle anonymous user is gone soon after start-up."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from bot.server import init_app

    repo = tandem.conversations
    idle, _ = await repo.create_token_user("web")
    async with tandem.db.transaction() as session:
        await session.execute(update(User).where(User.id == idle).values(last_seen_at=utcnow() - timedelta(days=90)))
    async with TestClient(TestServer(init_app(tandem))):
        for _ in range(100):
            async with tandem.db.transaction() as session:
                if await session.scalar(select(User.id).where(User.id == idle)) is None:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the idle anonymous user was not deleted")
