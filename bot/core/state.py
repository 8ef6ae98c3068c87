"""A conversation's dialog state: where it stands in a graph, its slots and the skill holding it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DialogState:
    """Persisted after every turn, so any process can continue the conversation.

    `flow`/`node` is the active dialog graph position (None when no graph is active);
    `active_skill` is a skill that asked to keep the conversation (e.g. a survey
    waiting for its next answer); `skill_state` holds each skill's own data by skill name.
    """

    flow: str | None = None
    node: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    active_skill: str | None = None
    skill_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    language: str | None = None
    turn_count: int = 0

    def copy(self) -> DialogState:
        return copy.deepcopy(self)
