"""The dialog graph file format as pydantic models (extra="forbid"): one YAML file is one flow."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.nlu.catalogue import LANGUAGES

# Node names and flow ids hold no dots, because a target "flow.node" splits at the dot.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONDITION_KEYS = ("intent", "regex", "text", "slot", "always", "any", "all", "not")
DEFAULT_LANGUAGE = "en"
# Longest piece of a condition shown in an edge label; a long regex would swamp the picture.
_LABEL_PART_CHARS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlotTest(_Strict):
    """`slot: {name: X, equals: V}` or `slot: {name: X, set: true|false}`."""

    name: str
    equals: Any = None
    is_set: bool | None = Field(None, alias="set")

    @model_validator(mode="after")
    def _one_test(self) -> SlotTest:
        # `equals: null` is a real test (the slot holds None), so look at what was given, not at values.
        given = [f for f in ("equals", "is_set") if f in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a slot test has `name` and exactly one of `equals`, `set`")
        return self


class Condition(_Strict):
    """The `when:` of a transition or trigger: exactly one of CONDITION_KEYS."""

    intent: tuple[str, ...] | None = None
    regex: str | None = None
    text: tuple[str, ...] | None = None
    slot: SlotTest | None = None
    always: bool | None = None
    any_of: tuple[Condition, ...] | None = Field(None, alias="any")
    all_of: tuple[Condition, ...] | None = Field(None, alias="all")
    negated: Condition | None = Field(None, alias="not")

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_key(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a condition is a mapping with one of {', '.join(CONDITION_KEYS)}; got {data!r}")
        for key in data:
            if key not in CONDITION_KEYS:
                raise ValueError(f"unknown condition key {key!r} (known: {', '.join(CONDITION_KEYS)})")
        if len(data) != 1:
            raise ValueError(f"a condition has exactly one key, got {', '.join(map(str, data))}")
        key, value = next(iter(data.items()))
        if key in ("intent", "text") and isinstance(value, str):
            return {key: [value]}
        return data

    @field_validator("intent", "text", "any_of", "all_of")
    @classmethod
    def _not_empty(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        if value is not None and not value:
            raise ValueError("must list at least one item")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @field_validator("always")
    @classmethod
    def _only_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("`always` can only be true (delete the transition to disable it)")
        return value

    def label(self) -> str:
        """A short human reading of the condition, for edge labels: `intent: story`."""
        if self.intent is not None:
            return "intent: " + " | ".join(self.intent)
        if self.regex is not None:
            return "regex: " + _shorten(self.regex)
        if self.text is not None:
            return "text: " + " | ".join(f'"{_shorten(t)}"' for t in self.text)
        if self.slot is not None:
            if "equals" in self.slot.model_fields_set:
                return f"slot: {self.slot.name} = {_shorten(repr(self.slot.equals))}"
            return f"slot: {self.slot.name} {'set' if self.slot.is_set else 'unset'}"
        if self.always is not None:
            return "always"
        if self.any_of is not None:
            return "\nor ".join(c.label() for c in self.any_of)
        if self.all_of is not None:
            return "\nand ".join(c.label() for c in self.all_of)
        negated = self.negated.label() if self.negated is not None else "?"
        return f"not ({negated})"


class Transition(_Strict):
    """An edge: when `when` holds, go to `to` ("node" of this flow, or "flow.node"); higher priority first."""

    when: Condition
    to: str
    priority: int = 0

    @field_validator("to")
    @classmethod
    def _target_syntax(cls, value: str) -> str:
        return _check_target(value)


class Trigger(_Strict):
    """Enters this flow when no flow is active; `to` defaults to the flow's start node."""

    when: Condition
    to: str | None = None
    priority: int = 0

    @field_validator("to")
    @classmethod
    def _target_syntax(cls, value: str | None) -> str | None:
        return None if value is None else _check_target(value)


class Actions(_Strict):
    """What a node does besides answering: set slots, hand over to a skill, end the flow."""

    set_slots: dict[str, Any] = Field(default_factory=dict, alias="set")
    skill: str | None = None
    end: bool = False

    @property
    def terminal(self) -> bool:
        return self.end or self.skill is not None


class Node(_Strict):
    """One step of a flow: what the bot says and offers, what it does, and where it may go next."""

    response: dict[str, str] | None = None
    suggestions: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    actions: Actions = Field(default_factory=Actions)
    transitions: tuple[Transition, ...] = ()

    @field_validator("response", mode="before")
    @classmethod
    def _response_per_language(cls, value: Any) -> Any:
        return {DEFAULT_LANGUAGE: value} if isinstance(value, str) else value

    @field_validator("suggestions", mode="before")
    @classmethod
    def _suggestions_per_language(cls, value: Any) -> Any:
        if value is None:
            return {}
        return {DEFAULT_LANGUAGE: value} if isinstance(value, list) else value

    @field_validator("response", "suggestions")
    @classmethod
    def _known_languages(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:
            return value
        for language in value:
            if language not in LANGUAGES:
                raise ValueError(f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")
        if DEFAULT_LANGUAGE not in value:
            raise ValueError(f"texts per language need an {DEFAULT_LANGUAGE!r} entry, the default")
        return value

    @field_validator("suggestions")
    @classmethod
    def _same_count_per_language(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        # Quick replies are matched across languages by position, so every language lists the same number.
        counts = {language: len(texts) for language, texts in value.items()}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{language}: {n}" for language, n in counts.items())
            raise ValueError(f"every language needs the same number of quick replies ({listed})")
        return value

    def text(self, language: str) -> str | None:
        """The response in `language`, else English; None when the node says nothing."""
        if not self.response:
            return None
        return self.response.get(language) or self.response[DEFAULT_LANGUAGE]

    def quick_replies(self, language: str) -> tuple[str, ...]:
        if not self.suggestions:
            return ()
        return self.suggestions.get(language) or self.suggestions[DEFAULT_LANGUAGE]

    def suggestion_variants(self) -> tuple[tuple[str, ...], ...]:
        """Each quick reply in every language: (("Help", "Помощь"), ...), for `text:` conditions."""
        return tuple(zip(*self.suggestions.values(), strict=True))


class FlowFile(_Strict):
    """The whole YAML file; the flow id is the file stem, so it is not written inside."""

    description: str = ""
    start: str
    fallback: str | None = None
    triggers: tuple[Trigger, ...] = ()
    global_transitions: tuple[Transition, ...] = ()
    nodes: dict[str, Node]

    @field_validator("nodes", mode="before")
    @classmethod
    def _empty_nodes_allowed(cls, value: Any) -> Any:
        # `goodbye:` with nothing under it is an empty node, not an error of type.
        if isinstance(value, dict):
            return {name: {} if body is None else body for name, body in value.items()}
        return value

    @field_validator("nodes")
    @classmethod
    def _valid_node_names(cls, value: dict[str, Node]) -> dict[str, Node]:
        if not value:
            raise ValueError("a flow needs at least one node")
        for name in value:
            if not NAME.match(str(name)):
                raise ValueError(f"node name {name!r} must be a letter or _ followed by letters, digits or _")
        return value


def _check_target(value: str) -> str:
    parts = value.split(".")
    if len(parts) > 2 or not all(NAME.match(p) for p in parts):
        raise ValueError(f"a target is 'node' or 'flow.node', got {value!r}")
    return value


def _shorten(text: str) -> str:
    return text if len(text) <= _LABEL_PART_CHARS else text[: _LABEL_PART_CHARS - 1] + "…"
