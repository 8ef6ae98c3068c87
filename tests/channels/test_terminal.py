"""The terminal chat: in process through chat_loop, and as the real `tandem chat` command with a pipe."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.channels.terminal import chat_loop


async def test_chat_loop_answers_each_line_and_skips_blank_ones(tandem) -> None:
    out = io.StringIO()
    turns = await chat_loop(tandem.handle_turn, stdin=io.StringIO("hi\n\n   \nhelp\n"), stdout=out, user_id="ann")
    assert turns == 2
    lines = [line for line in out.getvalue().splitlines() if line.startswith("tandem> ")]
    assert len(lines) == 2
    assert "Tandem" in lines[0]


def run_chat(data_dir: Path, text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", "ann"],
        input=text, capture_output=True, text=True, timeout=240,
        env={**env, "TANDEM_DATA_DIR": str(data_dir)},
    )


def stored_messages(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "tandem.sqlite3") as connection:
        return connection.execute("SELECT author, skill FROM messages ORDER BY id").fetchall()


def test_piped_chat_answers_both_lines_and_stores_the_turns(tmp_path: Path, subprocess_env) -> None:
    result = run_chat(tmp_path, "hi\nhelp\n", subprocess_env)
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.startswith("tandem> ")]
    assert len(answers) == 2
    assert "Traceback" not in result.stdout + result.stderr
    messages = stored_messages(tmp_path)
    assert [author for author, _ in messages] == ["user", "bot", "user", "bot"]
    # "hi" enters the onboarding graph, whose menu answers "help" itself.
    assert [skill for _, skill in messages[1::2]] == ["graph", "graph"]
    assert "what I can do" in answers[1]


def test_a_second_process_continues_the_conversation(tmp_path: Path, subprocess_env) -> None:
    first = run_chat(tmp_path, "leave feedback\n", subprocess_env)
    assert first.returncode == 0 and "1 (poor) to 5" in first.stdout, first.stderr
    # A new process: the survey's state must come from the database.
    second = run_chat(tmp_path, "4\nskip\n", subprocess_env)
    assert second.returncode == 0, second.stderr
    assert "Anything you'd like to add" in second.stdout
    with sqlite3.connect(tmp_path / "tandem.sqlite3") as connection:
        ratings = connection.execute("SELECT kind, value FROM feedback").fetchall()
        conversations = connection.execute("SELECT count(*) FROM conversations").fetchone()[0]
    assert ratings == [("rating", 4)]
    assert conversations == 1


def test_a_broken_setting_stops_start_up_naming_the_key(tmp_path: Path, subprocess_env) -> None:
    env = {**subprocess_env, "TANDEM_DISPATCHER__TURN_TIMEOUT_S": "soon"}
    result = run_chat(tmp_path, "hi\n", env)
    assert result.returncode == 2
    assert "dispatcher.turn_timeout_s" in result.stderr and "Traceback" not in result.stderr


async def test_small_talk_is_written_to_the_terminal_as_it_is_generated(settings) -> None:
    from bot.app import build_app
    from bot.models.fake import FakeLanguageModel

    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    app = await build_app(settings, language_model=FakeLanguageModel("I'm doing well, thanks for asking. And you?"))
    try:
        out = Writes()
        await chat_loop(app.handle_turn, stdin=io.StringIO("how are you?\n"), stdout=out, user_id="bo")
        assert out.writes >= 4 and "I'm doing well, thanks for asking. And you?" in out.getvalue()
    finally:
        await app.close()


async def test_a_rewritten_reply_is_shown_after_what_was_streamed(settings) -> None:
    from bot.app import build_app
    from bot.models.fake import FakeLanguageModel

    app = await build_app(settings, language_model=FakeLanguageModel("Sounds lovely. I would love to hear more about"))
    try:
        out = io.StringIO()
        await chat_loop(app.handle_turn, stdin=io.StringIO("I went for a walk\n"), stdout=out, user_id="cy")
        assert out.getvalue().rstrip().endswith("\n(rewritten) Sounds lovely.")
        assert out.getvalue().count("tandem> ") == 1  # one answer, whatever was streamed before it
    finally:
        await app.close()
