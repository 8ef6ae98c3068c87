"""StoryRepo: stories, their passage tree, lore and summaries, always scoped to the owning user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from bot.core.errors import NotFound
from bot.storage.database import Database
from bot.storage.schema import LoreEntry, Passage, Story, StorySummary, is_row_id, utcnow

# Story columns a caller may change in place; a passage's text never changes in place (only its rating does).
EDITABLE = frozenset({"title", "genre", "premise", "style", "language", "memory", "author_note", "settings"})


@dataclass(frozen=True)
class StoryRecord:
    id: int
    user_id: int
    title: str
    genre: str | None
    premise: str | None
    style: str | None
    language: str
    memory: str
    author_note: str
    settings: dict[str, Any]
    head_id: int | None
    cursor: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PassageRecord:
    id: int
    story_id: int
    parent_id: int | None
    author: str
    text: str
    status: str
    candidate_group: int | None
    chosen_at: datetime | None
    source_id: int | None
    created_at: datetime
    rating: int | None = None


@dataclass(frozen=True)
class LoreRecord:
    id: int
    keys: tuple[str, ...]
    text: str
    enabled: bool = True


@dataclass(frozen=True)
class SummaryRecord:
    through_id: int
    covered: int
    text: str


@dataclass(frozen=True)
class NewPassage:
    """A passage to add. `parent_index` points at an earlier passage of the same batch
    (edits copy a chain of passages) and wins over `parent_id`."""

    author: str
    text: str
    parent_id: int | None = None
    parent_index: int | None = None
    status: str = "complete"
    candidate: bool = False
    source_id: int | None = None


@dataclass(frozen=True)
class ImportedStory:
    """A story read from an export: passages keep their exported ids only to link parents."""

    meta: dict[str, Any]
    passages: Sequence[dict[str, Any]]
    head: int | None
    lore: Sequence[tuple[str, str, bool]] = ()  # (keys, text, enabled)
    summaries: Sequence[dict[str, Any]] = field(default_factory=tuple)


def _story(row: Story) -> StoryRecord:
    return StoryRecord(
        row.id, row.user_id, row.title, row.genre, row.premise, row.style, row.language, row.memory,
        row.author_note, dict(row.settings or {}), row.head_id, dict(row.cursor or {}), row.created_at,
        row.updated_at,
    )


def _passage(row: Passage) -> PassageRecord:
    return PassageRecord(
        row.id, row.story_id, row.parent_id, row.author, row.text, row.status, row.candidate_group,
        row.chosen_at, row.source_id, row.created_at, row.rating,
    )


def _lore(row: LoreEntry) -> LoreRecord:
    return LoreRecord(row.id, split_keys(row.keys), row.text, row.enabled is not False)


def split_keys(keys: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in keys.split(",") if k.strip())


async def _insert_passages(session, values: list[dict[str, Any]],
                           parent_index: list[int | None]) -> list[Passage]:
    """Insert passages in one INSERT .. RETURNING and link those whose parent is another of them
    (`parent_index[i]`, its position in `values`) in one UPDATE: two statements however many
    passages, where a flush per row would cost a round trip each. Returns the rows, in order."""
    if not values:
        return []
    ids = list(await session.scalars(insert(Passage).returning(Passage.id, sort_by_parameter_order=True), values))
    links = [{"id": ids[i], "parent_id": ids[parent]} for i, parent in enumerate(parent_index) if parent is not None]
    if links:
        await session.execute(update(Passage), links)
    rows = {row.id: row for row in await session.scalars(select(Passage).where(Passage.id.in_(ids)))}
    return [rows[i] for i in ids]


class StoryRepo:
    """Every method takes the acting user's id; another user's story is NotFound, like a missing one."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _owned(self, session, user_id: int, story_id: int) -> Story:
        row = await session.get(Story, story_id) if is_row_id(story_id) else None
        if row is None or row.user_id != user_id:
            raise NotFound(f"story {story_id}")
        return row

    # --- stories -------------------------------------------------------------

    async def create_story(self, user_id: int, title: str, *, language: str = "en", genre: str | None = None,
                           premise: str | None = None, style: str | None = None, memory: str = "",
                           author_note: str = "", settings: dict[str, Any] | None = None) -> StoryRecord:
        async with self.db.transaction() as session:
            row = Story(user_id=user_id, title=title, language=language, genre=genre, premise=premise, style=style,
                        memory=memory, author_note=author_note, settings=settings or {}, cursor={})
            session.add(row)
            await session.flush()
            return _story(row)

    async def get_story(self, user_id: int, story_id: int) -> StoryRecord:
        async with self.db.transaction() as session:
            return _story(await self._owned(session, user_id, story_id))

    async def list_stories(self, user_id: int) -> list[tuple[StoryRecord, int]]:
        """The user's stories, most recently changed first, each with its passage count."""
        async with self.db.transaction() as session:
            # Only this user's passages are counted (through ix_stories_user_updated, then
            # ix_passages_story_id_id), not every passage in the database.
            counts = (
                select(Passage.story_id, func.count(Passage.id).label("n"))
                .join(Story, Story.id == Passage.story_id).where(Story.user_id == user_id)
                .group_by(Passage.story_id).subquery()
            )
            rows = await session.execute(
                select(Story, counts.c.n)
                .outerjoin(counts, counts.c.story_id == Story.id)
                .where(Story.user_id == user_id)
                .order_by(Story.updated_at.desc(), Story.id.desc())
            )
            return [(_story(story), n or 0) for story, n in rows]

    async def update_story(self, user_id: int, story_id: int, **changes: Any) -> StoryRecord:
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        async with self.db.transaction() as session:
            row = await self._owned(session, user_id, story_id)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            return _story(row)

    async def delete_story(self, user_id: int, story_id: int) -> None:
        async with self.db.transaction() as session:
            row = await self._owned(session, user_id, story_id)
            # Passages point at each other; deleting them children-first is not needed because the
            # story's delete cascades, but SQLite without the pragma would leave them, so be explicit.
            await session.execute(delete(StorySummary).where(StorySummary.story_id == story_id))
            await session.execute(delete(LoreEntry).where(LoreEntry.story_id == story_id))
            await session.execute(delete(Passage).where(Passage.story_id == story_id))
            await session.delete(row)

    # --- the lease: one process at a time acts on a story ------------------------

    async def take_lease(self, story_id: int, holder: str, lease_s: float) -> bool:
        """Hold the story's lease for `lease_s` unless another holder's has not run out. True also
        when there is no such story: nothing to guard, and the action itself answers NotFound."""
        if not is_row_id(story_id):
            return True
        now = utcnow()
        stories = Story.__table__
        async with self.db.transaction() as session:
            taken = await session.execute(
                update(stories).where(stories.c.id == story_id,
                                      or_(stories.c.lease_until.is_(None), stories.c.lease_until < now))
                .values(lease_holder=holder, lease_until=now + timedelta(seconds=lease_s)))
            if taken.rowcount:
                return True
            return await session.scalar(select(stories.c.id).where(stories.c.id == story_id)) is None

    async def renew_lease(self, story_id: int, holder: str, lease_s: float) -> None:
        if not is_row_id(story_id):
            return
        stories = Story.__table__
        async with self.db.transaction() as session:
            await session.execute(update(stories).where(stories.c.id == story_id, stories.c.lease_holder == holder)
                                  .values(lease_until=utcnow() + timedelta(seconds=lease_s)))

    async def release_lease(self, story_id: int, holder: str) -> None:
        if not is_row_id(story_id):  # an id no story can have (2**63 in a path) was never leased
            return
        stories = Story.__table__
        async with self.db.transaction() as session:
            await session.execute(update(stories).where(stories.c.id == story_id, stories.c.lease_holder == holder)
                                  .values(lease_holder=None, lease_until=None))

    # --- passages --------------------------------------------------------------

    async def passages(self, user_id: int, story_id: int) -> dict[int, PassageRecord]:
        """The whole passage tree of a story by id (stories are hundreds of passages, not millions)."""
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            rows = await session.scalars(select(Passage).where(Passage.story_id == story_id).order_by(Passage.id))
            return {row.id: _passage(row) for row in rows}

    async def add_passages(self, user_id: int, story_id: int, new: Sequence[NewPassage], *,
                           head_index: int | None = None, cursor: dict[str, Any] | None = None,
                           keep_head: bool = False, candidate_group: int | None = None,
                           append_pending: bool = False) -> tuple[StoryRecord, list[PassageRecord]]:
        """Insert passages in one transaction and move the cursor: the head becomes
        `new[head_index]` (the last one by default) unless `keep_head`; `cursor` replaces
        the redo stack and pending candidates, and with `append_pending` the new passages
        are added to its pending list. Candidates join `candidate_group`, or a new group
        when it is None."""
        async with self.db.transaction() as session:
            story = await self._owned(session, user_id, story_id)
            group = candidate_group
            if group is None and any(p.candidate for p in new):
                top = await session.scalar(
                    select(func.max(Passage.candidate_group)).where(Passage.story_id == story_id)
                )
                group = (top or 0) + 1
            rows = await _insert_passages(session, [
                {"story_id": story_id, "parent_id": item.parent_id if item.parent_index is None else None,
                 "author": item.author, "text": item.text, "status": item.status,
                 "candidate_group": group if item.candidate else None, "source_id": item.source_id}
                for item in new], [item.parent_index for item in new])
            if rows and not keep_head:
                story.head_id = rows[-1 if head_index is None else head_index].id
            if cursor is not None:
                if append_pending:
                    cursor = {**cursor, "pending": [*cursor.get("pending", []), *(r.id for r in rows)]}
                story.cursor = cursor
            story.updated_at = utcnow()
            return _story(story), [_passage(r) for r in rows]

    async def move_cursor(self, user_id: int, story_id: int, head_id: int | None, cursor: dict[str, Any],
                          *, chosen_id: int | None = None) -> StoryRecord:
        """Point the story at another passage (undo, redo, branch, choose); no passage changes,
        except that a chosen candidate records when it was chosen."""
        async with self.db.transaction() as session:
            story = await self._owned(session, user_id, story_id)
            if chosen_id is not None:
                chosen = await session.get(Passage, chosen_id)
                if chosen is None or chosen.story_id != story_id:
                    raise NotFound(f"passage {chosen_id}")
                if chosen.chosen_at is None:
                    chosen.chosen_at = utcnow()
            story.head_id = head_id
            story.cursor = cursor
            story.updated_at = utcnow()
            return _story(story)

    async def rate_passage(self, user_id: int, story_id: int, passage_id: int, value: int | None) -> PassageRecord:
        """The writer's thumb on a passage (None clears it); the only column of a passage that changes."""
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            row = await session.get(Passage, passage_id) if is_row_id(passage_id) else None
            if row is None or row.story_id != story_id:
                raise NotFound(f"passage {passage_id}")
            row.rating = value
            await session.flush()
            return _passage(row)

    # --- lore ------------------------------------------------------------------

    async def lore(self, user_id: int, story_id: int) -> list[LoreRecord]:
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            rows = await session.scalars(select(LoreEntry).where(LoreEntry.story_id == story_id).order_by(LoreEntry.id))
            return [_lore(r) for r in rows]

    async def set_lore(self, user_id: int, story_id: int, keys: Sequence[str], text: str,
                       enabled: bool = True) -> LoreRecord:
        """Add an entry, or replace the text of the entry with the same keys."""
        joined = ", ".join(keys)
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            rows = await session.scalars(select(LoreEntry).where(LoreEntry.story_id == story_id))
            row = next((r for r in rows if {k.lower() for k in split_keys(r.keys)} == {k.lower() for k in keys}), None)
            if row is None:
                row = LoreEntry(story_id=story_id, keys=joined, text=text, enabled=enabled)
                session.add(row)
            else:
                row.text, row.enabled = text, enabled
            await session.flush()
            return _lore(row)

    async def update_lore(self, user_id: int, story_id: int, lore_id: int, *, keys: Sequence[str] | None = None,
                          text: str | None = None, enabled: bool | None = None) -> LoreRecord:
        """Change an entry in place (lore is settings, not story text: nothing of it needs keeping)."""
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            row = await session.get(LoreEntry, lore_id) if is_row_id(lore_id) else None
            if row is None or row.story_id != story_id:
                raise NotFound(f"lore entry {lore_id}")
            if keys is not None:
                row.keys = ", ".join(keys)
            if text is not None:
                row.text = text
            if enabled is not None:
                row.enabled = enabled
            await session.flush()
            return _lore(row)

    async def remove_lore(self, user_id: int, story_id: int, lore_id: int) -> None:
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            row = await session.get(LoreEntry, lore_id) if is_row_id(lore_id) else None
            if row is None or row.story_id != story_id:
                raise NotFound(f"lore entry {lore_id}")
            await session.delete(row)

    # --- summaries -------------------------------------------------------------

    async def summaries(self, user_id: int, story_id: int) -> dict[int, SummaryRecord]:
        """Stored summaries by the passage they run through."""
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            rows = await session.scalars(
                select(StorySummary).where(StorySummary.story_id == story_id).order_by(StorySummary.id)
            )
            return {r.through_id: SummaryRecord(r.through_id, r.covered, r.text) for r in rows}

    async def add_summary(self, user_id: int, story_id: int, through_id: int, covered: int, text: str) -> None:
        async with self.db.transaction() as session:
            await self._owned(session, user_id, story_id)
            session.add(StorySummary(story_id=story_id, through_id=through_id, covered=covered, text=text))

    # --- import ----------------------------------------------------------------

    async def import_story(self, user_id: int, story: ImportedStory) -> StoryRecord:
        """Create a story from a validated export in one transaction; exported ids are remapped."""
        meta = story.meta
        async with self.db.transaction() as session:
            row = Story(user_id=user_id, title=meta["title"], language=meta.get("language") or "en",
                        genre=meta.get("genre"), premise=meta.get("premise"), style=meta.get("style"),
                        memory=meta.get("memory") or "", author_note=meta.get("author_note") or "",
                        settings=dict(meta.get("settings") or {}), cursor={})
            session.add(row)
            await session.flush()
            # Parents come first (the caller orders them); a parent id the export does not hold
            # leaves its passage a root. Exported id 0 is an id like any other.
            index_of = {item["id"]: i for i, item in enumerate(story.passages)}
            now = utcnow()
            inserted = await _insert_passages(session, [
                {"story_id": row.id, "parent_id": None, "author": item["author"], "text": item["text"],
                 "status": item.get("status", "complete"), "candidate_group": item.get("candidate_group"),
                 "chosen_at": now if item.get("chosen") else None, "rating": item.get("rating")}
                for item in story.passages],
                [index_of.get(item["parent_id"]) if item["parent_id"] is not None else None
                 for item in story.passages])
            ids = {item["id"]: passage.id for item, passage in zip(story.passages, inserted, strict=True)}
            for keys, text, enabled in story.lore:
                session.add(LoreEntry(story_id=row.id, keys=keys, text=text, enabled=enabled))
            for summary in story.summaries:
                if summary["through_id"] in ids:
                    session.add(StorySummary(story_id=row.id, through_id=ids[summary["through_id"]],
                                             covered=summary["covered"], text=summary["text"]))
            row.head_id = ids.get(story.head) if story.head is not None else None
            await session.flush()
            return _story(row)
