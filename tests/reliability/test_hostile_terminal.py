"""The hostile-input corpus against the terminal chat: line by line through chat_loop in process, and
the whole corpus (with bytes that are not UTF-8) piped into the real `tandem chat` command. Every
line gets an answer (blank ones are skipped), refusals are polite and store nothing, accepted lines
are stored cleaned, nothing shows a traceback, and "help" is answered afterwards."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import Tandem
from bot.channels.terminal import chat_loop
from bot.storage.schema import Conversation, Message, User
from tests.reliability.conftest import assert_no_traceback, row_counts
from tests.reliability.hostile_inputs import LINES, TEXTS, HostileText, params

ONE_LINE = [case for case in TEXTS if case.one_line]


def answers_in(output: str) -> list[str]:
    """The bot's answers in chat_loop's output, one per turn (an answer may span lines)."""
    return [part.strip() for part in output.split("tandem> ")[1:]]


def skipped(text: str) -> bool:
    """chat_loop skips lines that are only whitespace, as a person pressing Enter twice."""
    return not text.strip()


async def chat(tandem: Tandem, text: str, user: str) -> str:
    out = io.StringIO()
    await chat_loop(tandem.handle_turn, stdin=io.StringIO(text), stdout=out, user_id=user, prompt=False)
    assert_no_traceback(out.getvalue())
    return out.getvalue()


async def messages_of(tandem: Tandem, user: str) -> list[Message]:
    async with tandem.db.transaction() as session:
        return list(await session.scalars(
            select(Message).join(Conversation, Conversation.id == Message.conversation_id)
            .join(User, User.id == Conversation.user_id)
            .where(User.channel == "terminal", User.external_id == user).order_by(Message.id)))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", params(ONE_LINE))
async def test_a_hostile_line_is_answered_politely_or_stored_cleaned(sqlite_tandem, case: HostileText) -> None:
    user = f"term-{case.name}"
    await chat(sqlite_tandem, "help\n", user)  # the user and conversation exist before the snapshot
    before = await row_counts(sqlite_tandem)
    answers = answers_in(await chat(sqlite_tandem, f"{case.text}\nhelp\n", user))
    after = await row_counts(sqlite_tandem)
    stored = await messages_of(sqlite_tandem, user)
    if skipped(case.text):
        assert len(answers) == 1 and after["messages"] == before["messages"] + 2
    elif case.refused:
        assert len(answers) == 2 and case.refusal in answers[0]
        assert after["messages"] == before["messages"] + 2  # the help turn only
    else:
        assert len(answers) == 2 and answers[0]
        assert after["messages"] == before["messages"] + 4
        assert [(m.author, m.text) for m in stored[-4:-2]][0] == ("user", case.stored)
    assert {k: v for k, v in after.items() if k != "messages"} == {k: v for k, v in before.items() if k != "messages"}
    assert answers[-1] and stored[-1].author == "bot" and stored[-1].skill in ("help", "graph")
    assert stored[-2].text == "help"


def _encodable(case: HostileText) -> bool:
    try:
        case.text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: their bytes are in LINES (encoded_surrogate)
        return False
    return True


@pytest.mark.asyncio(loop_scope="module")
async def test_the_whole_corpus_piped_into_tandem_chat(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    texts = [case for case in ONE_LINE if _encodable(case)]
    stdin = b"".join(case.text.encode("utf-8") + b"\n" for case in texts)
    stdin += b"".join(line.raw + b"\n" for line in LINES) + b"help\n"
    # The encoding is pinned so that the bytes above are what is not UTF-8, whatever the locale.
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path), "PYTHONIOENCODING": "utf-8"}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "chat", "--user", "hostile"],
        input=stdin, capture_output=True, timeout=280, env=env,
    )
    stdout, stderr = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, stderr[-3000:]
    assert_no_traceback(stdout, stderr)
    answered = [case for case in texts if not skipped(case.text)]
    answers = answers_in(stdout)
    assert len(answers) == len(answered) + len(LINES) + 1
    for case, answer in zip(answered, answers):
        assert answer, case.name
        if case.refused:
            assert case.refusal in answer, (case.name, answer)
    with sqlite3.connect(tmp_path / "tandem.sqlite3") as connection:
        stored = [text for (text,) in connection.execute("SELECT text FROM messages WHERE author = 'user' ORDER BY id")]
    expected = [case.stored for case in answered if not case.refused] + [line.stored for line in LINES] + ["help"]
    assert stored == expected
