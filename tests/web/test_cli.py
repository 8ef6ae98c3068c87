"""`tandem feedback report` in text, CSV and JSON, over a data folder with known feedback."""

from __future__ import annotations

import asyncio
import csv
import io
import json

from click.testing import CliRunner

from bot.cli import main
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.feedback import FeedbackRepo


def seed(url: str) -> str:
    async def go() -> str:
        db = Database(url)
        await db.migrate()
        try:
            repo = ConversationRepo(db)
            user_id = await repo.user_for("web", "ann")
            conversation = await repo.open_conversation(user_id, "web")
            await FeedbackRepo(db).add_rating(conversation, user_id, 5, "great fun")
            return conversation
        finally:
            await db.close()

    return asyncio.run(go())


def test_the_report_in_every_format(settings) -> None:
    conversation = seed(settings.resolved_database_url)
    runner = CliRunner()
    text = runner.invoke(main, ["feedback", "report", "--days", "7"])
    assert text.exit_code == 0, text.output
    assert "average 5.00 of 1 rating(s)" in text.stdout and "great fun" in text.stdout
    # Which database was read goes to stderr, so that the CSV and JSON on stdout stay clean.
    assert text.stderr == f"database: {settings.resolved_database_url}\n"

    as_csv = runner.invoke(main, ["feedback", "report", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["kind"], r["value"], r["conversation_id"]) for r in rows] == [("rating", "5", conversation)]

    as_json = json.loads(runner.invoke(main, ["feedback", "report", "--format", "json"]).stdout)
    assert as_json["report"]["rating_average"] == 5 and as_json["feedback"][0]["comment"] == "great fun"


def test_a_bad_format_is_refused(settings) -> None:
    result = CliRunner().invoke(main, ["feedback", "report", "--format", "xml"])
    assert result.exit_code == 2 and "xml" in result.output


def test_the_report_names_its_database_and_never_makes_one(settings, monkeypatch) -> None:
    """A report of zeros from a database made up on the spot would hide settings that are not the server's."""
    monkeypatch.setenv("TANDEM_DATABASE_URL", "postgresql+asyncpg://tandem:s3cret@127.0.0.1:1/tandem")
    named = CliRunner().invoke(main, ["feedback", "report", "--format", "csv"], catch_exceptions=False)
    assert "database: postgresql+asyncpg://tandem:***@127.0.0.1:1/tandem" in named.stderr
    assert named.exit_code == 2 and "cannot migrate the database at" in named.stderr  # nothing listens there
    assert "s3cret" not in named.output

    monkeypatch.delenv("TANDEM_DATABASE_URL")
    database = settings.data_dir / "tandem.sqlite3"
    result = CliRunner().invoke(main, ["feedback", "report"])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"error: no database at {database}:" in result.stderr
    assert not settings.data_dir.exists()
