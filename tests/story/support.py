"""Helpers of the story tests: a migrated database, a user, and a StoryService over a fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.models.fake import FakeLanguageModel
from bot.story.service import StoryService
from bot.story.settings import StorySettings
from bot.story.tree import GenerationDone
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.stories import StoryRepo


@dataclass
class StoryWorld:
    db: Database
    repo: StoryRepo
    service: StoryService
    model: FakeLanguageModel
    user: int
    other_user: int


@asynccontextmanager
async def story_world(url: str, model: FakeLanguageModel | None = None, **settings) -> AsyncIterator[StoryWorld]:
    db = Database(url)
    await db.migrate()
    try:
        users = ConversationRepo(db)
        ann, bob = await users.user_for("test", "ann"), await users.user_for("test", "bob")
        model = model or FakeLanguageModel(["The fox found a lantern. It glowed in the dark."])
        repo = StoryRepo(db)
        defaults = StorySettings(**settings) if settings else StorySettings()
        yield StoryWorld(db, repo, StoryService(repo, model, defaults=defaults), model, ann, bob)
    finally:
        await db.close()


async def run(events) -> tuple[list, GenerationDone]:
    """All events of a generation, and its final GenerationDone."""
    collected = [event async for event in events]
    done = collected[-1]
    assert isinstance(done, GenerationDone)
    return collected, done


def snapshot(tree) -> dict[int, tuple]:
    """What must never change for a stored passage: parent, author, text and status."""
    return {pid: (p.parent_id, p.author, p.text, p.status) for pid, p in tree.items()}


def assert_kept(before: dict[int, tuple], after: dict[int, tuple]) -> None:
    """Every passage stored before is still stored, unchanged (new ones may have been added)."""
    missing = set(before) - set(after)
    assert not missing, f"passages deleted: {missing}"
    changed = {pid for pid in before if before[pid] != after[pid]}
    assert not changed, f"passages changed: {changed}"
