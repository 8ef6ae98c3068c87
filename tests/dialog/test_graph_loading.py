"""Loading dialog graphs: every validation error names the file, the node and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import GraphError
from bot.dialog.flows import FlowRegistry

INTENTS = {"greeting", "story", "cancel", "help"}
SKILLS = {"story", "feedback"}


def load_errors(graphs: Path, **known) -> list[str]:
    with pytest.raises(GraphError) as caught:
        FlowRegistry.load(graphs, **known)
    return str(caught.value).splitlines()


def test_valid_flow_loads_with_its_graph(graphs, write_flow):
    write_flow("story", """
        description: Asks for a genre.
        start: ask_genre
        fallback: again
        triggers:
          - when: {intent: story}
        global_transitions:
          - when: {intent: cancel}
            to: bye
            priority: 100
        nodes:
          ask_genre:
            response: {en: "Which genre?", ru: "Какой жанр?"}
            transitions:
              - when: {regex: "fantasy|sci-fi"}
                to: bye
                priority: 2
          again:
            response: "Sorry?"
            transitions:
              - when: {always: true}
                to: ask_genre
          bye:
            actions: {end: true}
    """)
    registry = FlowRegistry.load(graphs, known_intents=INTENTS, known_skills=SKILLS)
    flow = registry.flows["story"]
    assert (flow.id, flow.start, flow.fallback) == ("story", "ask_genre", "again")
    assert flow.description == "Asks for a genre."
    assert registry.node_count == 3
    edge = flow.graph.edges["story.ask_genre", "story.bye"]
    assert edge == {"label": "regex: fantasy|sci-fi", "priority": 2, "kind": "transition"}
    assert flow.graph.edges["story.<any>", "story.bye"]["kind"] == "global"
    assert flow.graph.edges["story.<entry>", "story.ask_genre"]["label"] == "intent: story"
    assert flow.graph.edges["story.<any>", "story.again"]["kind"] == "fallback"
    assert flow.graph.nodes["story.ask_genre"]["start"] is True


def test_unknown_target_names_file_node_and_field(graphs, write_flow):
    write_flow("story", """
        start: ask_genre
        nodes:
          ask_genre:
            transitions:
              - when: {always: true}
                to: ask_genre
              - when: {intent: story}
                to: nowhere
    """)
    errors = load_errors(graphs)
    assert errors == [f"{graphs / 'story.yaml'}: node 'ask_genre': transitions[1].to: unknown target 'nowhere'"]


def test_unknown_flow_and_unknown_node_of_another_flow(graphs, write_flow):
    write_flow("a", """
        start: one
        nodes:
          one:
            transitions:
              - when: {always: true}
                to: nosuchflow.x
              - when: {always: true}
                to: b.missing
              - when: {always: true}
                to: b.two
    """)
    write_flow("b", """
        start: two
        nodes:
          two: {actions: {end: true}}
    """)
    errors = load_errors(graphs)
    assert any("a.yaml: node 'one': transitions[0].to: unknown flow 'nosuchflow' in target 'nosuchflow.x'" in e
               for e in errors)
    assert any("a.yaml: node 'one': transitions[1].to: unknown target 'b.missing'" in e for e in errors)
    assert len(errors) == 2


def test_unknown_condition_key_even_when_nested(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            transitions:
              - when: {any: [{intent: story}, {sentiment: positive}]}
                to: ask
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'ask': transitions[0].when.any[1]: unknown condition key 'sentiment'" in error


def test_condition_with_two_keys_is_rejected(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            transitions:
              - when: {intent: story, regex: "x"}
                to: ask
    """)
    [error] = load_errors(graphs)
    assert "node 'ask': transitions[0].when: a condition has exactly one key" in error


def test_unknown_intent_in_node_and_in_trigger(graphs, write_flow):
    write_flow("story", """
        start: ask
        triggers:
          - when: {intent: dance}
        nodes:
          ask:
            transitions:
              - when: {not: {intent: [story, sing]}}
                to: ask
    """)
    errors = load_errors(graphs, known_intents=INTENTS)
    assert any(e.endswith("story.yaml: triggers[0].when.intent: unknown intent 'dance'") for e in errors)
    assert any(e.endswith("story.yaml: node 'ask': transitions[0].when.not.intent: unknown intent 'sing'")
               for e in errors)
    assert len(errors) == 2


def test_intents_are_not_checked_without_a_catalogue(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            transitions:
              - when: {intent: dance}
                to: ask
    """)
    assert "story" in FlowRegistry.load(graphs, known_intents=None)


def test_unknown_skill(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            actions: {skill: poetry}
    """)
    [error] = load_errors(graphs, known_skills=SKILLS)
    assert error.endswith("story.yaml: node 'ask': actions.skill: unknown skill 'poetry' (known: feedback, story)")
    assert "story" in FlowRegistry.load(graphs, known_skills=None)


def test_invalid_regex(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            transitions:
              - when: {regex: "(unclosed"}
                to: ask
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'ask': transitions[0].when.regex: invalid regex '(unclosed'" in error


def test_unreachable_node(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            actions: {end: true}
          island:
            actions: {end: true}
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'island': unreachable" in error


def test_nodes_reached_from_other_flows_triggers_fallback_and_globals_are_reachable(graphs, write_flow):
    write_flow("a", """
        start: one
        nodes:
          one:
            transitions:
              - when: {always: true}
                to: b.from_other_flow
    """)
    write_flow("b", """
        start: two
        fallback: from_fallback
        triggers:
          - when: {intent: help}
            to: from_trigger
        global_transitions:
          - when: {intent: cancel}
            to: from_global
        nodes:
          two: {actions: {end: true}}
          from_other_flow: {actions: {end: true}}
          from_fallback: {actions: {end: true}}
          from_trigger: {actions: {end: true}}
          from_global:
            transitions:
              - when: {always: true}
                to: after_global
          after_global: {actions: {end: true}}
    """)
    assert len(FlowRegistry.load(graphs)) == 2


def test_non_terminal_node_without_exits(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            response: "Stuck here."
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'ask': transitions: non-terminal node has no exits" in error


def test_terminal_node_with_transitions_is_an_error(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            actions: {skill: story}
            transitions:
              - when: {always: true}
                to: ask
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'ask': transitions: a node with actions.end or actions.skill is terminal" in error


def test_missing_start_node(graphs, write_flow):
    write_flow("story", """
        nodes:
          ask: {actions: {end: true}}
    """)
    [error] = load_errors(graphs)
    assert error.endswith("story.yaml: start: missing start node (`start:` is required)")


def test_unknown_start_and_fallback_nodes(graphs, write_flow):
    write_flow("story", """
        start: begin
        fallback: sorry
        nodes:
          ask: {actions: {end: true}}
    """)
    errors = load_errors(graphs)
    assert any(e.endswith("story.yaml: start: unknown start node 'begin'") for e in errors)
    assert any(e.endswith("story.yaml: fallback: unknown fallback node 'sorry'") for e in errors)


def test_unknown_key_in_a_node_is_named(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            respnse: "typo"
            actions: {end: true, jump: x}
    """)
    errors = load_errors(graphs)
    assert any(e.endswith("story.yaml: node 'ask': unknown key 'respnse'") for e in errors)
    assert any(e.endswith("story.yaml: node 'ask': actions: unknown key 'jump'") for e in errors)


def test_quick_replies_need_the_same_count_in_every_language(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            suggestions: {en: ["Yes", "No"], ru: ["Да"]}
            actions: {end: true}
    """)
    [error] = load_errors(graphs)
    assert "story.yaml: node 'ask': suggestions: every language needs the same number of quick replies" in error


def test_unknown_language_and_missing_english(graphs, write_flow):
    write_flow("story", """
        start: ask
        nodes:
          ask:
            response: {de: "Hallo"}
            actions: {end: true}
          other:
            response: {ru: "Привет"}
            actions: {end: true}
    """)
    errors = load_errors(graphs)
    assert any("node 'ask': response: unknown language 'de'" in e for e in errors)
    assert any("node 'other': response: texts per language need an 'en' entry" in e for e in errors)


def test_all_errors_of_all_files_in_one_graph_error(graphs, write_flow):
    write_flow("a", """
        start: one
        nodes:
          one:
            transitions:
              - when: {always: true}
                to: nowhere
    """)
    write_flow("b", """
        start: two
        nodes:
          two:
            actions: {set: {x: 1}}
    """)
    write_flow("c", "just a string\n")
    errors = load_errors(graphs)
    assert [e.split(": ")[0].rsplit("/", 1)[-1] for e in errors] == ["a.yaml", "b.yaml", "c.yaml"]
    assert "c.yaml: expected a mapping with `start:` and `nodes:`" in errors[2]


def test_broken_file_does_not_make_its_targets_look_unreachable(graphs, write_flow):
    write_flow("a", """
        start: one
        nodes:
          one:
            respnse: typo
            transitions:
              - when: {always: true}
                to: b.only_from_a
    """)
    write_flow("b", """
        start: two
        nodes:
          two: {actions: {end: true}}
          only_from_a: {actions: {end: true}}
    """)
    errors = load_errors(graphs)
    assert len(errors) == 1 and "a.yaml: node 'one': unknown key 'respnse'" in errors[0]


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(GraphError, match="no such file or folder"):
        FlowRegistry.load(tmp_path / "absent")


def test_single_file_loads(write_flow):
    path = write_flow("solo", """
        start: only
        nodes:
          only: {actions: {end: true}}
    """)
    assert list(FlowRegistry.load(path).flows) == ["solo"]
