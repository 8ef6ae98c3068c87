"""`tandem feedback report` (text, or --format csv|json with the feedback export): the dashboard in a terminal."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from bot.core.errors import ConfigError


@click.group("feedback")
def feedback() -> None:
    """Feedback reports and exports (the /admin dashboard's numbers)."""


def _database(config: Path | None):
    from bot.settings import load_settings
    from bot.storage.database import Database

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    return Database(settings.resolved_database_url)


async def _with_db(config: Path | None, work):
    db = _database(config)
    try:
        await db.migrate()  # a fresh data folder gets an empty report, not a missing-table error
        return await work(db)
    finally:
        await db.close()


config_option = click.option("--config", type=click.Path(path_type=Path, dir_okay=False),
                             help="TOML settings file (default: $TANDEM_CONFIG or ./tandem.toml).")
format_option = click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
                             show_default=True)


@feedback.command("report")
@config_option
@format_option
@click.option("--days", type=click.IntRange(1, 365), default=30, show_default=True, help="Days of daily figures.")
def report(config: Path | None, fmt: str, days: int) -> None:
    """The report: conversations, turns and users per day, ratings, thumbs by skill and node,
    offer response rate, conversation length and duration, latest comments. CSV and JSON
    formats give the feedback export with the messages it refers to."""
    from bot.storage.reports import build_report, feedback_rows, rows_to_csv, rows_to_json

    if fmt == "text":
        click.echo(asyncio.run(_with_db(config, lambda db: build_report(db, days=days))).to_text(), nl=False)
        return

    async def export(db):
        rows = await feedback_rows(db)
        if fmt == "csv":
            return rows_to_csv(rows)
        summary = (await build_report(db, days=days)).to_json()
        return json.dumps({"report": summary, "feedback": json.loads(rows_to_json(rows))["feedback"]},
                          ensure_ascii=False, indent=2) + "\n"

    click.echo(asyncio.run(_with_db(config, export)), nl=False)
