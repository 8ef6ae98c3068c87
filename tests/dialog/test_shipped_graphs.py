"""The graphs in dialog_graphs/ validate against the real intent catalogue and behave as designed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.state import DialogState
from bot.dialog.engine import GraphEngine
from bot.dialog.flows import FlowRegistry
from bot.nlu.catalogue import LANGUAGES, IntentCatalogue
from bot.nlu.rules import RuleAnnotator

REPO = Path(__file__).resolve().parents[2]
SKILLS = {"help", "feedback", "fallback", "story", "smalltalk"}


@pytest.fixture(scope="module")
def catalogue() -> IntentCatalogue:
    return IntentCatalogue.load(REPO / "intents")


@pytest.fixture(scope="module")
def registry(catalogue) -> FlowRegistry:
    return FlowRegistry.load(REPO / "dialog_graphs", known_intents=set(catalogue.names), known_skills=SKILLS)


@pytest.fixture
def engine(registry) -> GraphEngine:
    return GraphEngine(registry)


def test_shipped_flows_load(registry):
    assert {"onboarding", "about"} <= set(registry.flows)


def test_every_response_and_quick_reply_is_in_every_language(registry):
    for flow in registry.flows.values():
        for name, node in flow.nodes.items():
            if node.response:
                assert set(node.response) == set(LANGUAGES), f"{flow.id}.{name}"
            if node.suggestions:
                assert set(node.suggestions) == set(LANGUAGES), f"{flow.id}.{name}"


def test_greeting_opens_onboarding_with_its_quick_replies(engine, annotated):
    step = engine.step(DialogState(), "hi", annotated("greeting"), "en")
    assert (step.flow, step.node) == ("onboarding", "welcome")
    assert step.suggestions == ("Write a story", "What can you do?", "Leave feedback")
    assert step.response.startswith("Hi! I'm Tandem.")


@pytest.mark.parametrize("said, language, node, skill", [
    ("Write a story", "en", "start_story", "story"),
    ("Напишем историю", "ru", "start_story", "story"),
    ("Leave feedback", "en", "leave_feedback", "feedback"),
    ("Оставить отзыв", "ru", "leave_feedback", "feedback"),
    ("What can you do?", "en", "capabilities", None),
])
def test_welcome_quick_replies_lead_on_without_any_intent(engine, annotated, said, language, node, skill):
    step = engine.step(DialogState(flow="onboarding", node="welcome"), said, annotated(), language)
    assert (step.node, step.skill) == (node, skill)


def test_cancel_ends_onboarding_from_anywhere(engine, annotated):
    step = engine.step(DialogState(flow="onboarding", node="capabilities"), "stop", annotated("cancel"), "ru")
    assert (step.node, step.end) == ("goodbye", True)
    assert step.response.startswith("Хорошо")


def test_anything_else_falls_back_and_ends_the_flow(engine, annotated):
    step = engine.step(DialogState(flow="onboarding", node="welcome"), "purple", annotated(), "en")
    assert (step.node, step.end, step.fallback) == ("not_understood", True, True)
    # A step through a transition is not a fallback (the dispatcher lets only fallbacks give way).
    assert not engine.step(DialogState(flow="onboarding", node="capabilities"), "stop", annotated("cancel"),
                           "en").fallback


def test_fallback_quick_replies_are_recognised_by_intent_rules(registry, catalogue):
    # After not_understood the flow has ended, so its quick replies must work through the intents.
    rules = RuleAnnotator(catalogue)
    node = registry.flows["onboarding"].nodes["not_understood"]
    for variants, intent in zip(node.suggestion_variants(), ("story", "help", "feedback"), strict=True):
        for text in variants:
            assert rules.match(text) == intent, text


def test_about_is_entered_by_its_intents_and_crosses_into_onboarding(engine, annotated):
    step = engine.step(DialogState(), "is it private?", annotated("privacy"), "en")
    assert (step.flow, step.node) == ("about", "privacy")
    step = engine.step(DialogState(), "what is tandem?", annotated("about_bot"), "en")
    assert (step.flow, step.node) == ("about", "what_is_tandem")
    step = engine.step(DialogState(flow="about", node="what_is_tandem"), "Напишем историю", annotated(), "ru")
    assert (step.flow, step.node, step.skill) == ("onboarding", "start_story", "story")


def test_about_data_quick_reply_wins_over_the_privacy_intent(engine, annotated):
    state = DialogState(flow="about", node="privacy")
    step = engine.step(state, "How is my data stored?", annotated("privacy"), "en")
    assert step.node == "data_storage"


def test_about_has_no_fallback_so_other_messages_leave_it(engine, annotated):
    assert engine.step(DialogState(flow="about", node="privacy"), "tell me a joke", annotated(), "en") is None


def test_about_intents_are_pinned_by_rules(catalogue):
    rules = RuleAnnotator(catalogue)
    assert rules.match("What is Tandem?") == "about_bot"
    assert rules.match("Кто ты?") == "about_bot"
    assert rules.match("Do you store my messages?") == "privacy"
    assert rules.match("Как хранятся мои данные?") == "privacy"
    assert rules.match("I love dragons") is None


def test_the_documented_example_is_a_valid_flow(tmp_path, catalogue):
    doc = (REPO / "docs" / "dialog_graphs.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "onboarding.yaml").write_text(example, encoding="utf-8")
    about = (REPO / "dialog_graphs" / "about.yaml").read_text(encoding="utf-8")
    (tmp_path / "about.yaml").write_text(about, encoding="utf-8")
    registry = FlowRegistry.load(tmp_path, known_intents=set(catalogue.names), known_skills=SKILLS)
    assert len(registry.flows["onboarding"].nodes) == 5
