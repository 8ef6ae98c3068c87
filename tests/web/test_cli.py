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
    assert "average 5.00 of 1 rating(s)" in text.output and "great fun" in text.output

    as_csv = runner.invoke(main, ["feedback", "report", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["kind"], r["value"], r["conversation_id"]) for r in rows] == [("rating", "5", conversation)]

    as_json = json.loads(runner.invoke(main, ["feedback", "report", "--format", "json"]).output)
    assert as_json["report"]["rating_average"] == 5 and as_json["feedback"][0]["comment"] == "great fun"


def test_a_bad_format_is_refused(settings) -> None:
    result = CliRunner().invoke(main, ["feedback", "report", "--format", "xml"])
    assert result.exit_code == 2 and "xml" in result.output
