"""The `tandem` command's wiring: its groups, and graph checks against the bot's real skills."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.settings import PROJECT_ROOT


def test_every_tool_group_is_on_the_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "chat", "migrate", "graph", "nlu", "feedback", "model", "doctor"):
        assert re.search(rf"^\s+{command}\s", result.output, re.MULTILINE), command


def test_the_command_starts_as_a_script_and_as_a_module() -> None:
    """`python -m bot.cli` runs bot/cli.py as __main__, so a tool group that imports bot.cli would
    import it a second time, half-built: an in-process CliRunner cannot see that, a new process does."""
    for argv in ([sys.executable, "-m", "bot.cli", "--help"], [sys.executable, "-m", "bot.cli", "story", "--help"]):
        done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout


def test_graph_check_knows_the_registered_skills(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    shutil.copytree(PROJECT_ROOT / "dialog_graphs", graphs)
    assert CliRunner().invoke(main, ["graph", "check", str(graphs)]).exit_code == 0
    onboarding = graphs / "onboarding.yaml"
    onboarding.write_text(onboarding.read_text().replace("skill: story", "skill: stroy"))
    result = CliRunner().invoke(main, ["graph", "check", str(graphs)])
    assert result.exit_code == 1
    assert "onboarding.yaml: node 'start_story': actions.skill: unknown skill 'stroy'" in result.output


def test_graph_draw_writes_a_picture(tmp_path: Path) -> None:
    out = tmp_path / "onboarding.png"
    result = CliRunner().invoke(main, ["graph", "draw", "onboarding", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
