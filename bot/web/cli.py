"""`tandem feedback report` (text, or --format csv|json with the feedback export): the dashboard in a terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bot.cli_options import config_option, fail
from bot.core.errors import BotError, ConfigError


@click.group("feedback")
def feedback() -> None:
    """Feedback reports and exports (the /admin dashboard's numbers)."""


def _database(config: Path | None):
    """The database of these settings, named on stderr. A SQLite file that does not exist is an error,
    not an empty report: it means the settings (data folder, working folder) are not the server's,
    and a report of zeros from a database made up on the spot would hide that."""
    from sqlalchemy.engine import make_url

    from bot.settings import load_settings
    from bot.storage.database import Database, safe_url

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc)
    url = settings.resolved_database_url
    click.echo(f"database: {safe_url(url)}", err=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).resolve()
        if not path.is_file():
            fail(f"no database at {path}: nothing has been stored there (`tandem run` or `tandem migrate` "
                 "makes it); to read another one, set TANDEM_DATA_DIR or TANDEM_DATABASE_URL, or pass --config")
    return Database(url)


def _with_db(config: Path | None, work):
    """The coroutine that runs `work(db)` on the settings' database; its settings are read and checked
    before it starts, so a wrong one ends the command before any event loop runs."""
    db = _database(config)

    async def run():
        try:
            await db.migrate()  # a database of an older Tandem gets the tables the report reads
            return await work(db)
        except BotError as exc:
            fail(exc)
        finally:
            await db.close()

    return run()


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
    from bot.storage.reports import build_report, export_chunks

    if fmt == "text":
        click.echo(asyncio.run(_with_db(config, lambda db: build_report(db, days=days))).to_text(), nl=False)
        return

    async def export(db) -> None:
        # Written as it is read: the export of millions of rows needs no more memory than of ten.
        summary = None if fmt == "csv" else (await build_report(db, days=days)).to_json()
        async for chunk in export_chunks(db, fmt, report=summary):
            click.echo(chunk, nl=False)

    asyncio.run(_with_db(config, export))
