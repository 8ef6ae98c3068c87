"""The conversation evaluation: its shipped set loads strictly and never replays an intent example,
a run reports what passed and what did not, and the whole set passes with the fake model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.evaluation.conversation_set import copied_examples, load_conversations
from bot.evaluation.conversations import eval_tandem, run_conversations
from bot.evaluation.set_files import EvalSetError
from bot.evaluation.report import format_report
from bot.nlu.catalogue import IntentCatalogue
from bot.settings import PROJECT_ROOT

SHIPPED_SET = PROJECT_ROOT / "evals" / "conversations"


def write(tmp_path: Path, text: str, name: str = "set.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the set ----------------------------------------------------------------------------------


def test_the_shipped_set_has_160_conversations_about_half_in_each_language() -> None:
    cases = load_conversations(SHIPPED_SET)
    assert len(cases) >= 160
    by_file = Counter(Path(case.source).stem for case in cases)
    assert by_file["en"] >= 0.4 * len(cases) and by_file["ru"] >= 0.4 * len(cases), by_file
    assert all(len(case.turns) >= 1 and case.tags for case in cases)
    assert sum(len(case.turns) > 1 for case in cases) >= 0.7 * len(cases)  # multi-turn, mostly


def test_no_user_text_repeats_an_intent_example() -> None:
    cases = load_conversations(SHIPPED_SET)
    catalogue = IntentCatalogue.load(PROJECT_ROOT / "intents")
    copied = copied_examples(cases, catalogue)
    assert not copied, "\n".join(f"{c.conversation}#{c.turn} {c.text!r} = example of {c.intent}" for c in copied)


def test_a_copied_example_is_found_whatever_its_case_and_punctuation(tmp_path: Path) -> None:
    intents = write(tmp_path, "intents:\n  help:\n    examples:\n      en: ['what can you do?']\n", "intents.yaml")
    cases = load_conversations(write(tmp_path, """
conversations:
  - {id: a, tags: [t], turns: [{user: "What can you do"}, {user: "What can you do, exactly?"}]}
"""))
    found = copied_examples(cases, IntentCatalogue.load(intents))
    assert [(c.conversation, c.turn, c.intent) for c in found] == [("a", 1, "help")]


@pytest.mark.parametrize(("body", "message"), [
    ('{id: broken, tags: [t], turns: [{user: hi}, {user: hi, rout: help}]}', "conversation 'broken': turn 2: `rout`: Extra inputs"),
    ('{id: broken, tags: [t], turns: [{user: hi, regex: "(unclosed"}]}', "conversation 'broken': turn 1: invalid `regex`"),
    ('{id: broken, tags: [t], turns: [{user: hi, route: help, route_any: [fallback]}]}', "turn 1: give `route` or `route_any`"),
    ('{id: broken, tags: [t], turns: [{user: hi, route: help, node: about.what_is_tandem}]}', "turn 1: `node` is a dialog graph node"),
    ('{id: broken, tags: [t], turns: [{user: hi, status: done}]}', "turn 1: `status`"),
    ('{id: broken, tags: [t], turns: []}', "conversation 'broken': `turns`"),
    ('{id: Broken One, tags: [t], turns: [{user: hi}]}', "conversation 'Broken One': `id`"),
    ('{id: broken, turns: [{user: hi}]}', "conversation 'broken': `tags`"),
])
def test_a_malformed_conversation_fails_at_load_naming_file_conversation_and_turn(tmp_path, body, message) -> None:
    path = write(tmp_path, "conversations:\n  - {id: fine, tags: [t], turns: [{user: hello}]}\n  - " + body + "\n")
    with pytest.raises(EvalSetError) as failure:
        load_conversations(path)
    assert str(path) in str(failure.value)
    assert message in str(failure.value)


def test_an_id_used_twice_in_a_folder_fails_naming_both_files(tmp_path: Path) -> None:
    write(tmp_path, "conversations:\n  - {id: same, tags: [t], turns: [{user: hi}]}\n", "a.yaml")
    write(tmp_path, "conversations:\n  - {id: same, tags: [t], turns: [{user: hello}]}\n", "b.yaml")
    with pytest.raises(EvalSetError, match=r"b\.yaml: conversation 'same': the id is used again \(first in .*a\.yaml\)"):
        load_conversations(tmp_path)


def test_a_file_that_is_not_a_conversation_list_fails(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="top-level `conversations:` list"):
        load_conversations(write(tmp_path, "intents: {}\n"))
    with pytest.raises(EvalSetError, match="unknown top-level keys"):
        load_conversations(write(tmp_path, "conversations: []\nextra: 1\n"))


def test_the_file_stem_is_a_tag(tmp_path: Path) -> None:
    [case] = load_conversations(write(tmp_path, "conversations:\n  - {id: a, tags: [greeting], turns: [{user: hi}]}\n",
                                      "ru.yaml"))
    assert case.all_tags == ("greeting", "ru")


# --- a run ------------------------------------------------------------------------------------


async def test_a_run_reports_passes_failures_tags_and_routes(settings, tmp_path: Path) -> None:
    cases = load_conversations(write(tmp_path, """
conversations:
  - id: passes
    tags: [feedback]
    turns:
      - {user: "leave feedback", route: feedback, contains: ["rate"], suggestions_any: ["5"]}
      - {user: "5", route: feedback}
  - id: fails
    tags: [feedback, about]
    turns:
      - {user: "What's Tandem?", node: about.privacy, not_contains: ["open-source"]}
      - {user: "leave feedback", route: help}
      - {user: "4", route: feedback, needs_model: true, contains: ["no such words"]}
"""))
    async with eval_tandem(settings, "fake") as tandem:
        report = await run_conversations(tandem, cases, with_model=False, model_name="fake")
    assert (report.passed, len(report.results)) == (1, 2)
    assert report.by_tag() == {"about": (0, 1), "feedback": (1, 2), "set": (1, 2)}
    assert dict(report.confusion()["help"]) == {"feedback": 1}
    assert dict(report.confusion()["graph"]) == {"graph": 1}
    [failed] = report.failures
    failures = {t.number: t.failures for t in failed.turns}
    assert failures[1] == ["node: expected about.privacy, got about.what_is_tandem", "not_contains: has 'open-source'"]
    assert failures[2] == ["route: expected help, got feedback"]
    # Every turn is checked after a failure; the survey went on, and with the fake
    # model a turn whose properties need the real one is checked by its route alone.
    assert failures[3] == [] and not failed.turns[2].properties_checked
    text = format_report(report)
    assert "conversations: 1/2 passed (50.0%)" in text
    assert "user: leave feedback" in text and "bot (feedback):" in text
    assert report.to_json()["failures"][0]["turns"][1]["failures"] == ["route: expected help, got feedback"]


async def test_routes_no_skill_has_are_reported_not_crashed_on(settings, tmp_path: Path) -> None:
    cases = load_conversations(write(tmp_path, """
conversations:
  - {id: a, tags: [t], turns: [{user: "leave feedback", route: no_such_skill}, {user: "hi", node: onboarding.nowhere}]}
"""))
    async with eval_tandem(settings, "fake") as tandem:
        report = await run_conversations(tandem, cases, with_model=False)
    assert report.passed == 0
    assert any("route 'no_such_skill': no such skill" in w for w in report.warnings)
    assert any("node 'onboarding.nowhere': no such graph node" in w for w in report.warnings)


async def test_conversations_run_concurrently_each_as_its_own_user(settings, tmp_path: Path) -> None:
    # Each conversation is a fresh user: a survey left open by one is not answered by another's "5".
    body = "\n".join(
        f"  - {{id: c{i}, tags: [t], turns: [{{user: 'leave feedback', route: feedback}}, "
        f"{{user: '{i % 5 + 1}', route: feedback, contains: ['add']}}]}}" for i in range(6))
    cases = load_conversations(write(tmp_path, "conversations:\n" + body + "\n"))
    async with eval_tandem(settings, "fake") as tandem:
        report = await run_conversations(tandem, cases, with_model=False, concurrency=4)
    assert report.passed == 6, format_report(report)
    assert [r.case.id for r in report.results] == [f"c{i}" for i in range(6)]


# --- the whole set ----------------------------------------------------------------------------


async def test_the_whole_set_passes_with_the_fake_model(settings) -> None:
    """Routes, and every property that needs no real model, of every shipped conversation."""
    cases = load_conversations(SHIPPED_SET)
    async with eval_tandem(settings, "fake") as tandem:
        report = await run_conversations(tandem, cases, with_model=False, concurrency=8, model_name="fake")
    passed, total = report.passed, len(report.results)
    assert passed == total, format_report(report)
