"""The conversation evaluation set: the schema of evals/conversations/*.yaml and its strict loader.

A file is `conversations: [...]`; each conversation is one user's turns in order, each turn the
user's text and what its reply must be (route and properties, all optional). Load time is strict:
an unknown key, a bad regex or a duplicated id stops the load, naming the file, the conversation
id and the turn number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.evaluation.set_files import SLUG, checked_id, load_set
from bot.nlu.catalogue import IntentCatalogue

# reply.skill values: a skill's name, "graph" (a dialog graph node answered), "dispatcher" (refused input).
_ROUTE = re.compile(r"^[a-z][a-z0-9_]*$")
_NODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ReplyStatus = Literal["complete", "incomplete", "fallback", "rejected"]
Language = Literal["en", "ru"]


class ExpectedTurn(BaseModel):
    """One user message and what the bot's reply to it must be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(min_length=1)
    # The skill that must answer (reply.skill), or any one of several.
    route: str | None = None
    route_any: tuple[str, ...] = ()
    # flow.node of the dialog graph node that answered (with route: graph).
    node: str | None = None
    contains: tuple[str, ...] = ()  # all of them, case-insensitively
    contains_any: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    regex: str | None = None  # searched, case-insensitively
    language: Language | None = None  # the script the reply is written in
    max_sentences: int | None = Field(None, ge=1)
    suggestions: tuple[str, ...] = ()  # all of these quick replies are offered
    suggestions_any: tuple[str, ...] = ()  # at least one of them is
    status: ReplyStatus | None = None
    not_same_as_previous: bool = False  # differs from the bot's reply one turn earlier
    not_repeated: bool = False  # differs from every earlier bot reply of the conversation
    # A Russian reply must address the user as ты; off only where a reply may rightly say вы.
    informal: bool = True
    # The properties need the real language model: with the fake one only the route is checked.
    needs_model: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ExpectedTurn:
        if self.route is not None and self.route_any:
            raise ValueError("give `route` or `route_any`, not both")
        for route in (self.route, *self.route_any):
            if route is not None and not _ROUTE.match(route):
                raise ValueError(f"a route is a skill name or `graph`, got {route!r}")
        if self.node is not None:
            if not _NODE.match(self.node):
                raise ValueError(f"`node` is flow.node, got {self.node!r}")
            if self.route not in (None, "graph"):
                raise ValueError(f"`node` is a dialog graph node, but `route` is {self.route!r}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid `regex` {self.regex!r}: {exc}") from exc
        for name in ("contains", "contains_any", "not_contains", "suggestions", "suggestions_any", "route_any"):
            if any(not text.strip() for text in getattr(self, name)):
                raise ValueError(f"`{name}` holds an empty string")
        return self

    @property
    def routes(self) -> tuple[str, ...]:
        """The routes that pass; empty when the turn does not check its route."""
        if self.route is not None:
            return (self.route,)
        if self.node is not None:
            return ("graph",)
        return self.route_any


class ConversationCase(BaseModel):
    """One user's conversation, replayed from a fresh start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tags: tuple[str, ...] = Field(min_length=1)
    # What the conversation is about, for whoever reads a failure.
    about: str | None = None
    channel: str = "web"
    # The language the channel reports for the user (a Telegram client's, a browser's), if any.
    language: Language | None = None
    turns: tuple[ExpectedTurn, ...] = Field(min_length=1)
    # Set by the loader: the file it came from (its stem is also one of the tags).
    source: str = ""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        return checked_id(value)

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not SLUG.match(tag):
                raise ValueError(f"a tag is lowercase letters, digits, - and _, got {tag!r}")
        return value

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Its tags and its file's stem ("en", "ru", "mixed"), so `--only ru` selects a file."""
        stem = Path(self.source).stem
        return self.tags if not stem or stem in self.tags else (*self.tags, stem)


def load_conversations(path: Path) -> list[ConversationCase]:
    """Every conversation of one file, or of every *.yaml of a folder, in file order; ids are
    unique across the whole set (each names one user of the run)."""
    return load_set(path, ConversationCase, key="conversations", noun="conversation", describe=_describe)


def _describe(exc: ValidationError) -> str:
    """The first error, with its turn counted from 1 as a reader of the file counts."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    prefix = ""
    if len(loc) >= 2 and loc[0] == "turns" and isinstance(loc[1], int):
        prefix = f"turn {loc[1] + 1}: "
        loc = loc[2:]
    field = ".".join(str(part) for part in loc)
    message = err["msg"].removeprefix("Value error, ")
    return f"{prefix}`{field}`: {message}" if field else f"{prefix}{message}"


# --- generalisation: the set must not replay the catalogue's own examples ------------------------


@dataclass(frozen=True)
class CopiedExample:
    conversation: str
    turn: int
    text: str
    intent: str


def comparable(text: str) -> str:
    """Text as two copies of one phrase compare: case, spacing and surrounding punctuation aside."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    text = " ".join(text.split())
    return text.strip(" \t!?.,;:…\"'«»()-")


def copied_examples(conversations: Iterable[ConversationCase], catalogue: IntentCatalogue) -> list[CopiedExample]:
    """User texts that repeat an intent example of the catalogue: the set measures how the bot
    understands what it was not shown, so none may."""
    examples = {comparable(text): intent.name for intent in catalogue for text in intent.texts("examples")}
    found = []
    for case in conversations:
        for number, turn in enumerate(case.turns, start=1):
            key = comparable(turn.user)
            if key in examples:
                found.append(CopiedExample(case.id, number, turn.user, examples[key]))
    return found
