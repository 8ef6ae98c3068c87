"""`tandem graph check` and `tandem graph draw` through click's test runner."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bot.dialog.cli import graph

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [str(REPO / "dialog_graphs"), "--intents", str(REPO / "intents")]


def test_check_shipped_graphs_passes():
    result = CliRunner().invoke(graph, ["check", *SHIPPED, "--skills", "help,feedback,fallback,story,smalltalk"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 2 flows, ")


def test_check_reports_errors_and_exits_1(graphs, write_flow):
    write_flow("broken", "start: a\nnodes:\n  a:\n    transitions:\n      - {when: {intent: nope}, to: b}\n")
    result = CliRunner().invoke(graph, ["check", str(graphs), "--intents", str(REPO / "intents")])
    assert result.exit_code == 1
    assert "broken.yaml: node 'a': transitions[0].when.intent: unknown intent 'nope'" in result.output
    assert "broken.yaml: node 'a': transitions[0].to: unknown target 'b'" in result.output


def test_check_skills_only_when_given():
    result = CliRunner().invoke(graph, ["check", *SHIPPED, "--skills", "help"])
    assert result.exit_code == 1
    assert "actions.skill: unknown skill 'story'" in result.output


def test_draw_writes_the_picture(tmp_path):
    out = tmp_path / "onboarding.svg"
    args = ["draw", "onboarding", "-o", str(out), "--graphs", str(REPO / "dialog_graphs")]
    result = CliRunner().invoke(graph, args)
    assert result.exit_code == 0, result.output
    assert "welcome" in out.read_text(encoding="utf-8")


def test_draw_unknown_flow_or_format_fails(tmp_path):
    args = ["--graphs", str(REPO / "dialog_graphs")]
    result = CliRunner().invoke(graph, ["draw", "nosuch", "-o", str(tmp_path / "x.svg"), *args])
    assert result.exit_code == 2 and "unknown flow 'nosuch'" in result.output
    result = CliRunner().invoke(graph, ["draw", "onboarding", "-o", str(tmp_path / "x.gif"), *args])
    assert result.exit_code == 2 and not (tmp_path / "x.gif").exists()
