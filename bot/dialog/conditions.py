"""Evaluating a transition's `when:` against one user message, its annotations and the slots."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.annotations import Annotations
from bot.dialog.schema import Condition


@dataclass(frozen=True)
class ConditionContext:
    """What a condition can look at in one turn.

    `suggestions` are the quick replies the user was offered, each in every language
    (("Write a story", "Написать историю"), ...): a `text:` condition naming one variant
    accepts the others, so clicking a quick reply in Russian matches `text: Write a story`.
    """

    text: str
    annotations: Annotations
    slots: Mapping[str, Any]
    suggestions: tuple[tuple[str, ...], ...] = ()


def matches(condition: Condition, context: ConditionContext) -> bool:
    """Whether `condition` holds; never raises for odd input (run time is forgiving)."""
    if condition.intent is not None:
        return context.annotations.intent_name in condition.intent
    if condition.regex is not None:
        return _compiled(condition.regex).search(context.text) is not None
    if condition.text is not None:
        return _text_matches(condition.text, context)
    if condition.slot is not None:
        slot = condition.slot
        if "equals" in slot.model_fields_set:
            return slot.name in context.slots and _equal(context.slots[slot.name], slot.equals)
        is_set = context.slots.get(slot.name) is not None
        return is_set == slot.is_set
    if condition.always is not None:
        return True
    if condition.any_of is not None:
        return any(matches(c, context) for c in condition.any_of)
    if condition.all_of is not None:
        return all(matches(c, context) for c in condition.all_of)
    if condition.negated is not None:
        return not matches(condition.negated, context)
    return False


def normalized(text: str) -> str:
    return text.strip().casefold()


def _text_matches(expected: tuple[str, ...], context: ConditionContext) -> bool:
    said = normalized(context.text)
    wanted = {normalized(t) for t in expected}
    if said in wanted:
        return True
    for variants in context.suggestions:
        forms = {normalized(v) for v in variants}
        if said in forms and forms & wanted:
            return True
    return False


def _equal(value: Any, expected: Any) -> bool:
    # Slots come back from JSON storage, so a stored value may differ in type from YAML's; never raise.
    try:
        return bool(value == expected)
    except Exception:  # noqa: BLE001 - a strange __eq__ must not break a turn
        return False


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)
