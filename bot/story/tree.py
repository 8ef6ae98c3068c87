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


def passage_json(passage: PassageRecord, number: int | None = None) -> dict[str, Any]:
    return {
        "id": passage.id, "number": number, "parent_id": passage.parent_id, "author": passage.author,
        "author_label": AUTHOR_LABELS.get(passage.author, passage.author), "text": passage.text,
        "status": passage.status, "candidate": passage.candidate_group is not None,
        "chosen": passage.chosen_at is not None, "source_id": passage.source_id,
    }


@dataclass(frozen=True)
class StoryView:
    """A story as a channel shows it: its settings, the current path and waiting candidates."""

    story: StoryRecord
    path: list[PassageRecord]
    pending: list[PassageRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def can_redo(self) -> bool:
        return bool(self.story.cursor.get("redo"))

    def to_json(self) -> dict[str, Any]:
        story = self.story
        return {
            "id": story.id, "title": story.title, "genre": story.genre, "premise": story.premise,
            "style": story.style, "language": story.language, "memory": story.memory,
            "author_note": story.author_note, "settings": self.settings, "head_id": story.head_id,
            "passages": [passage_json(p, i) for i, p in enumerate(self.path, 1)],
            "candidates": [passage_json(p) | {"candidate_number": i} for i, p in enumerate(self.pending, 1)],
            "can_undo": story.head_id is not None, "can_redo": self.can_redo,
            "updated_at": story.updated_at.isoformat(),
        }


def build_view(story: StoryRecord, tree: Mapping[int, PassageRecord], settings: dict[str, Any]) -> StoryView:
    pending = [tree[i] for i in story.cursor.get("pending", []) if i in tree]
    return StoryView(story, path_to(tree, story.head_id), pending, settings)


# --- generation events, streamed by StoryService to the skill and the HTTP API -----------------

@dataclass(frozen=True)
class PassageDelta:
    """A piece of the candidate being generated (1-based `candidate` of `total`)."""

    candidate: int
    text: str
    total: int = 1


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

    def to_json(self) -> dict[str, Any]:
        return {
            "story": self.view.to_json(),
            "user_passage": passage_json(self.user_passage) if self.user_passage else None,
            "candidates": [passage_json(p) | {"candidate_number": i} for i, p in enumerate(self.candidates, 1)],
            "errors": self.errors, "auto_chosen": self.auto_chosen,
        }
