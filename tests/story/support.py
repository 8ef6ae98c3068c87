"""Helpers of the story tests: a migrated database, a user, and a StoryService over a fake model."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

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


_TEMPLATE: Path | None = None


async def migrated(url: str) -> Database:
    """A migrated database; SQLite files are copied from one migrated template, since running
    the migrations takes a second or two on a busy machine."""
    global _TEMPLATE
    path = make_url(url).database if url.startswith("sqlite") else None
    if path:
        if _TEMPLATE is None or not _TEMPLATE.is_file():
            template = Path(tempfile.mkdtemp(prefix="story-template-")) / "template.sqlite3"
            db = Database(f"sqlite+aiosqlite:///{template}")
            await db.migrate()
            await db.close()
            _TEMPLATE = template
        shutil.copyfile(_TEMPLATE, path)
        return Database(url)
    db = Database(url)
    await db.migrate()
    return db


@asynccontextmanager
async def story_world(url: str, model: FakeLanguageModel | None = None, **settings) -> AsyncIterator[StoryWorld]:
    db = await migrated(url)
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
