"""Stepping through graphs: priorities, global transitions, fallback, triggers, slots and languages."""

from __future__ import annotations

import pytest

from bot.core.state import DialogState
from bot.dialog.engine import GraphEngine, GraphStep, fill_slots
from bot.dialog.flows import FlowRegistry

STORY = """
    start: ask_genre
    fallback: again
    triggers:
      - when: {intent: story}
      - when: {intent: greeting}
        to: waiting
    global_transitions:
      - when: {intent: cancel}
        to: stopped
        priority: 100
      - when: {regex: "dragon"}
        to: dragons
    nodes:
      ask_genre:
        response: {en: "Which genre, {name}?", ru: "Какой жанр, {name}?"}
        suggestions: {en: ["Fantasy", "Sci-fi"], ru: ["Фэнтези", "Фантастика"]}
        transitions:
          - when: {text: "Fantasy"}
            to: fantasy
          - when: {regex: "\\\\bdragons?\\\\b"}
            to: fantasy
          - when: {regex: "space|dragon"}
            to: scifi
            priority: 5
          - when: {slot: {name: genre, equals: horror}}
            to: other.spooky
          - when: {slot: {name: age, set: false}}
            to: ask_age
      fantasy:
        response: "A {genre} story with {hero}."
        actions: {set: {genre: fantasy}, skill: story}
      scifi:
        actions: {set: {genre: sci-fi}, end: true}
      dragons:
        actions: {end: true}
      ask_age:
        response: "How old are you?"
        actions: {end: true}
      again:
        response: {en: "Sorry?", ru: "Извини?"}
        transitions:
          - when: {always: true}
            to: ask_genre
      stopped:
        actions: {end: true}
      waiting:
        transitions:
          - when: {intent: help}
            to: ask_genre
"""

OTHER = """
    start: spooky
    triggers:
      - when: {intent: help}
        to: spooky_help
        priority: 1
      - when: {regex: "ghost"}
    nodes:
      spooky:
        response: "Boo."
        actions: {end: true}
      spooky_help:
        response: "Ghosts help."
        actions: {end: true}
"""

AFTER = """
    start: first
    triggers:
      - when: {regex: "ghost"}
        to: first
    nodes:
      first:
        transitions:
          - when: {intent: help}
            to: first
"""


@pytest.fixture
def engine(graphs, write_flow) -> GraphEngine:
    write_flow("story", STORY)
    write_flow("other", OTHER)
    write_flow("zzz", AFTER)  # no fallback: an unmatched message leaves it
    return GraphEngine(FlowRegistry.load(graphs))


def at(flow: str | None, node: str | None, **slots) -> DialogState:
    return DialogState(flow=flow, node=node, slots={"age": 30, **slots})


def test_higher_priority_wins_over_declaration_order(engine, annotated):
    step = engine.step(at("story", "ask_genre"), "A dragon tale", annotated(), "en")
    assert (step.flow, step.node) == ("story", "scifi")


def test_equal_priority_takes_the_nodes_own_transition_before_the_global_one(engine, annotated):
    # At `again`, "dragons" matches the node's `always` and the global regex "dragon", both priority 0.
    step = engine.step(at("story", "again"), "dragons", annotated(), "en")
    assert step.node == "ask_genre"


def test_global_transition_with_higher_priority_beats_the_nodes_own(engine, annotated):
    step = engine.step(at("story", "again"), "cancel", annotated("cancel"), "en")
    assert (step.node, step.end) == ("stopped", True)


def test_global_transition_applies_where_the_node_has_no_match(engine, annotated):
    step = engine.step(at("story", "waiting"), "a DRAGON!", annotated(), "en")
    assert step.node == "dragons"
    assert engine.step(at("zzz", "first"), "a dragon!", annotated(), "en") is None  # story's globals stay in story


def test_fallback_when_nothing_matches(engine, annotated):
    step = engine.step(at("story", "ask_genre"), "hmm", annotated(), "ru")
    assert step == GraphStep(flow="story", node="again", response="Извини?", suggestions=(), set_slots={},
                             skill=None, end=False, fallback=True)


def test_no_match_and_no_fallback_returns_none(engine, annotated):
    assert engine.step(at("zzz", "first"), "hmm", annotated(), "en") is None


def test_target_in_another_flow(engine, annotated):
    step = engine.step(at("story", "ask_genre", genre="horror"), "whatever", annotated(), "en")
    assert (step.flow, step.node, step.response) == ("other", "spooky", "Boo.")


def test_slot_set_false_matches_a_missing_slot(engine, annotated):
    state = DialogState(flow="story", node="ask_genre", slots={})
    assert engine.step(state, "whatever", annotated(), "en").node == "ask_age"
    state.slots["age"] = None  # a slot holding None counts as not set
    assert engine.step(state, "whatever", annotated(), "en").node == "ask_age"


def test_text_condition_accepts_the_same_quick_reply_in_another_language(engine, annotated):
    for said in ("Fantasy", "  fantasy ", "ФЭНТЕЗИ"):
        assert engine.step(at("story", "ask_genre"), said, annotated(), "ru").node == "fantasy"
    # "Фантастика" is the Russian of "Sci-fi", which no text condition names: fallback.
    assert engine.step(at("story", "ask_genre"), "Фантастика", annotated(), "ru").node == "again"


def test_step_reports_actions_and_fills_slots_including_the_nodes_own(engine, annotated):
    step = engine.step(at("story", "ask_genre", hero="Ada"), "fantasy", annotated(), "en")
    assert step.set_slots == {"genre": "fantasy"}
    assert step.skill == "story" and step.end is False
    assert step.response == "A fantasy story with Ada."


def test_unknown_placeholder_is_left_as_written(engine, annotated):
    step = engine.step(at("story", "ask_genre"), "fantasy", annotated(), "en")
    assert step.response == "A fantasy story with {hero}."
    assert fill_slots("{a} {b} {} {not closed", {"a": 1, "b": None}) == "1 {b} {} {not closed"


def test_response_and_suggestions_in_the_users_language_else_english(engine, annotated):
    state = at("story", "again", name="Ada")
    ru = engine.step(state, "anything", annotated(), "ru")
    assert (ru.response, ru.suggestions) == ("Какой жанр, Ada?", ("Фэнтези", "Фантастика"))
    fr = engine.step(state, "anything", annotated(), "fr")
    assert (fr.response, fr.suggestions) == ("Which genre, Ada?", ("Fantasy", "Sci-fi"))


def test_trigger_enters_a_flow_at_its_start(engine, annotated):
    step = engine.step(at(None, None), "let's write", annotated("story"), "en")
    assert (step.flow, step.node) == ("story", "ask_genre")


def test_triggers_by_priority_then_flow_id(engine, annotated):
    step = engine.step(at(None, None), "help", annotated("help"), "en")
    assert (step.flow, step.node) == ("other", "spooky_help")  # priority 1
    step = engine.step(at(None, None), "a ghost!", annotated(), "en")
    assert (step.flow, step.node) == ("other", "spooky")  # same priority as zzz's: "other" < "zzz"


def test_no_trigger_matches(engine, annotated):
    assert engine.step(at(None, None), "thank you", annotated("thanks"), "en") is None


@pytest.mark.parametrize("flow, node", [("gone", "ask_genre"), ("story", "gone"), ("story", None)])
def test_a_position_that_no_longer_exists_counts_as_no_flow(engine, annotated, flow, node):
    step = engine.step(at(flow, node), "story please", annotated("story"), "en")
    assert (step.flow, step.node) == ("story", "ask_genre")


def test_step_does_not_change_the_state(engine, annotated):
    state = at("story", "ask_genre", hero="Ada")
    before = state.copy()
    engine.step(state, "fantasy", annotated(), "en")
    assert state == before
