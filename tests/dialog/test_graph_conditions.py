"""Conditions: each kind of `when:` against text, annotations, slots and offered quick replies."""

from __future__ import annotations

import pytest

from bot.dialog.conditions import ConditionContext, matches
from bot.dialog.schema import Condition


def holds(when: dict, text: str = "", intent: str | None = None, slots: dict | None = None,
          suggestions=(), *, annotated) -> bool:
    context = ConditionContext(text, annotated(intent), slots or {}, tuple(suggestions))
    return matches(Condition.model_validate(when), context)


def test_intent_one_or_several(annotated):
    assert holds({"intent": "story"}, intent="story", annotated=annotated)
    assert holds({"intent": ["help", "story"]}, intent="story", annotated=annotated)
    assert not holds({"intent": "story"}, intent="help", annotated=annotated)
    assert not holds({"intent": "story"}, intent=None, annotated=annotated)


def test_regex_is_searched_case_insensitively(annotated):
    assert holds({"regex": r"\bdragons?\b"}, "Tell me about DRAGONS please", annotated=annotated)
    assert not holds({"regex": r"^dragon$"}, "a dragon", annotated=annotated)


def test_text_is_compared_casefolded_and_stripped_but_whole(annotated):
    assert holds({"text": "Write a story"}, "  write A STORY ", annotated=annotated)
    assert holds({"text": ["Yes", "Sure"]}, "sure", annotated=annotated)
    assert not holds({"text": "Write a story"}, "Write a story now", annotated=annotated)


def test_text_accepts_the_other_languages_of_an_offered_quick_reply(annotated):
    offered = [("Write a story", "Напишем историю"), ("Help", "Помощь")]
    assert holds({"text": "Write a story"}, "напишем историю", suggestions=offered, annotated=annotated)
    assert not holds({"text": "Write a story"}, "Помощь", suggestions=offered, annotated=annotated)
    assert not holds({"text": "Write a story"}, "напишем историю", annotated=annotated)  # not offered


@pytest.mark.parametrize("slots, expected", [({"genre": "fantasy"}, True), ({"genre": "horror"}, False), ({}, False)])
def test_slot_equals(slots, expected, annotated):
    assert holds({"slot": {"name": "genre", "equals": "fantasy"}}, slots=slots, annotated=annotated) is expected


def test_slot_equals_null_needs_the_slot_to_exist(annotated):
    when = {"slot": {"name": "x", "equals": None}}
    assert holds(when, slots={"x": None}, annotated=annotated)
    assert not holds(when, slots={}, annotated=annotated)


def test_slot_set(annotated):
    assert holds({"slot": {"name": "genre", "set": True}}, slots={"genre": 0}, annotated=annotated)
    assert not holds({"slot": {"name": "genre", "set": True}}, slots={}, annotated=annotated)
    assert holds({"slot": {"name": "genre", "set": False}}, slots={"genre": None}, annotated=annotated)


def test_always_any_all_not(annotated):
    assert holds({"always": True}, annotated=annotated)
    either = {"any": [{"intent": "story"}, {"text": "go"}]}
    assert holds(either, "go", annotated=annotated) and holds(either, "x", "story", annotated=annotated)
    assert not holds(either, "x", annotated=annotated)
    both = {"all": [{"intent": "story"}, {"regex": "dragon"}]}
    assert holds(both, "a dragon", "story", annotated=annotated)
    assert not holds(both, "a dragon", annotated=annotated)
    assert holds({"not": {"intent": "story"}}, intent="help", annotated=annotated)
    assert not holds({"not": {"intent": "story"}}, intent="story", annotated=annotated)


def test_slot_test_needs_exactly_one_of_equals_and_set():
    with pytest.raises(ValueError, match="exactly one of `equals`, `set`"):
        Condition.model_validate({"slot": {"name": "x"}})
    with pytest.raises(ValueError, match="exactly one of `equals`, `set`"):
        Condition.model_validate({"slot": {"name": "x", "equals": 1, "set": True}})


def test_labels_read_like_the_yaml():
    assert Condition.model_validate({"intent": "story"}).label() == "intent: story"
    assert Condition.model_validate({"text": ["Yes", "Да"]}).label() == 'text: "Yes" | "Да"'
    assert Condition.model_validate({"slot": {"name": "g", "equals": "x"}}).label() == "slot: g = 'x'"
    assert Condition.model_validate({"not": {"slot": {"name": "g", "set": True}}}).label() == "not (slot: g set)"
    assert Condition.model_validate({"any": [{"intent": "a"}, {"always": True}]}).label() == "intent: a\nor always"
