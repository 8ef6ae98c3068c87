"""`tandem eval conversations`: the report, the JSON file, --only, --limit and the exit code."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main

SET = """
conversations:
  - {id: survey, tags: [feedback], turns: [{user: "leave feedback", route: feedback}, {user: "5", route: feedback}]}
  - {id: wrong, tags: [help], turns: [{user: "leave feedback", route: help}]}
"""


def run(tmp_path: Path, *args: str):
    (tmp_path / "set.yaml").write_text(SET, encoding="utf-8")
    return CliRunner().invoke(main, ["eval", "conversations", "--set", str(tmp_path / "set.yaml"), "--model", "fake",
                                     *args])


def test_the_report_and_json(tmp_path: Path, settings) -> None:
    out = tmp_path / "out" / "report.json"
    result = run(tmp_path, "--json", str(out))
    assert result.exit_code == 0, result.output  # --min-pass defaults to 0
    assert "conversations: 1/2 passed (50.0%)" in result.output
    assert "route: expected help, got feedback" in result.output
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert (figures["conversations"], figures["passed"], figures["model"]) == (2, 1, "fake")
    assert figures["confusion"]["help"] == {"feedback": 1}
    assert [f["id"] for f in figures["failures"]] == ["wrong"]


def test_min_pass_sets_the_exit_code(tmp_path: Path, settings) -> None:
    assert run(tmp_path, "--min-pass", "0.9").exit_code == 1
    assert run(tmp_path, "--min-pass", "0.9", "--only", "feedback").exit_code == 0
    assert run(tmp_path, "--min-pass", "1", "--limit", "1").exit_code == 0


def test_a_broken_set_or_no_match_exits_2(tmp_path: Path, settings) -> None:
    assert run(tmp_path, "--only", "nothing").exit_code == 2
    (tmp_path / "bad.yaml").write_text("conversations:\n  - {id: x, tags: [t], turns: [{user: hi, bad: 1}]}\n")
    result = CliRunner().invoke(main, ["eval", "conversations", "--set", str(tmp_path / "bad.yaml"), "--model", "fake"])
    assert result.exit_code == 2
    assert "conversation 'x': turn 1: `bad`" in result.output
