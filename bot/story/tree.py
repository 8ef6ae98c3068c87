"""The passage tree: the path to the story's head, numbering, and the views every channel shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.storage.stories import PassageRecord, StoryRecord

AUTHOR_LABELS = {"user": "you", "model": "model", "edited": "model, edited by you"}
# Who wrote a passage, as the user reads it (chat, exports); AUTHOR_LABELS is the API's `author_label`.
AUTHOR_NAMES = {"en": AUTHOR_LABELS, "ru": {"user": "ты", "model": "модель", "edited": "модель, с твоей правкой"}}


def path_to(tree: Mapping[int, PassageRecord], head_id: int | None) -> list[PassageRecord]:
    """The passages from the first one to `head_id`, in story order."""
    path: list[PassageRecord] = []
    seen: set[int] = set()
    current = tree.get(head_id) if head_id is not None else None
    while current is not None and current.id not in seen:  # `seen` guards against a corrupted cycle
        seen.add(current.id)
        path.append(current)
        current = tree.get(current.parent_id) if current.parent_id is not None else None
    path.reverse()
    return path


def children(tree: Mapping[int, PassageRecord], parent_id: int | None) -> list[PassageRecord]:
    return [p for p in tree.values() if p.parent_id == parent_id]


def siblings(tree: Mapping[int, PassageRecord], passage: PassageRecord) -> list[PassageRecord]:
    """The passages with the same parent, `passage` among them, oldest first: its swipes."""
    return sorted(children(tree, passage.parent_id), key=lambda p: p.id)


def continuation(tree: Mapping[int, PassageRecord], passage_id: int) -> int:
    """The end of the branch below a passage that the writer last followed: at each step the
    child most recently chosen or written, passing over candidates that were never chosen
    (they were alternatives, not the story). A swipe goes to a sibling and on down its branch,
    so swiping back restores what was there."""
    current = passage_id
    seen = {current}
    while True:
        followed = [p for p in children(tree, current) if p.candidate_group is None or p.chosen_at is not None]
        if not followed:
            return current
        best = max(followed, key=lambda p: (p.chosen_at or p.created_at, p.id))
        if best.id in seen:  # a corrupted cycle
            return current
        seen.add(best.id)
        current = best.id


def passage_json(passage: PassageRecord, number: int | None = None,
                 swipe: tuple[int, int] | None = None) -> dict[str, Any]:
    """A passage as the API gives it; `swipe` is (1-based position, count) among its siblings,
    given where the caller has the tree (a fresh candidate event has not, so it has no `swipe`)."""
    data = {
        "id": passage.id, "number": number, "parent_id": passage.parent_id, "author": passage.author,
        "author_label": AUTHOR_LABELS.get(passage.author, passage.author), "text": passage.text,
        "status": passage.status, "candidate": passage.candidate_group is not None,
        "chosen": passage.chosen_at is not None, "source_id": passage.source_id, "rating": passage.rating,
    }
    if swipe is not None:
        data["swipe"] = {"index": swipe[0], "count": swipe[1]}
    return data


def swipe_positions(tree: Mapping[int, PassageRecord]) -> dict[int, tuple[int, int]]:
    """Passage id -> (1-based position, count) among its siblings, oldest first, for every passage."""
    by_parent: dict[int | None, list[int]] = {}
    for passage in sorted(tree.values(), key=lambda p: p.id):
        by_parent.setdefault(passage.parent_id, []).append(passage.id)
    return {pid: (i, len(ids)) for ids in by_parent.values() for i, pid in enumerate(ids, 1)}


@dataclass(frozen=True)
class StoryView:
    """A story as a channel shows it: its settings, the current path and waiting candidates."""

    story: StoryRecord
    path: list[PassageRecord]
    pending: list[PassageRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    # Passage id -> (position, count) among its siblings, for the path and the pending candidates.
    swipes: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def can_redo(self) -> bool:
        return bool(self.story.cursor.get("redo"))

    def to_json(self) -> dict[str, Any]:
        story = self.story
        return {
            "id": story.id, "title": story.title, "genre": story.genre, "premise": story.premise,
            "style": story.style, "language": story.language, "memory": story.memory,
            "author_note": story.author_note, "settings": self.settings, "head_id": story.head_id,
            "passages": [passage_json(p, i, self.swipes.get(p.id)) for i, p in enumerate(self.path, 1)],
            "candidates": [passage_json(p, None, self.swipes.get(p.id)) | {"candidate_number": i}
                           for i, p in enumerate(self.pending, 1)],
            "can_undo": story.head_id is not None, "can_redo": self.can_redo,
            "updated_at": story.updated_at.isoformat(),
        }


def build_view(story: StoryRecord, tree: Mapping[int, PassageRecord], settings: dict[str, Any]) -> StoryView:
    pending = [tree[i] for i in story.cursor.get("pending", []) if i in tree]
    path = path_to(tree, story.head_id)
    positions = swipe_positions(tree)
    swipes = {p.id: positions[p.id] for p in (*path, *pending) if p.id in positions}
    return StoryView(story, path, pending, settings, swipes)


# --- generation events, streamed by StoryService to the skill and the HTTP API -----------------

@dataclass(frozen=True)
class PassageDelta:
    """A piece of the candidate being generated (1-based `candidate` of `total`); `reset` says
    the candidate is being written again, so what was shown of it goes first."""

    candidate: int
    text: str
    total: int = 1
    reset: bool = False


@dataclass(frozen=True)
class CandidateDone:
    """One candidate ended: stored (`passage`), possibly incomplete, or lost with an `error`."""

    candidate: int
    passage: PassageRecord | None
    error: str | None = None


@dataclass(frozen=True)
class GenerationDone:
    """The whole request ended; `view` is the story afterwards."""

    view: StoryView
    user_passage: PassageRecord | None
    candidates: list[PassageRecord]
    errors: list[str]
    auto_chosen: bool = False
    # Candidate ids best first (bot.story.quality's score), and what its checks noted on each.
    ranked: list[int] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "story": self.view.to_json(),
            "user_passage": passage_json(self.user_passage) if self.user_passage else None,
            "candidates": [passage_json(p) | {"candidate_number": i, "notes": self.notes.get(p.id, [])}
                           for i, p in enumerate(self.candidates, 1)],
            "ranked": self.ranked or [p.id for p in self.candidates],
            "errors": self.errors, "auto_chosen": self.auto_chosen,
        }
