"""`tandem admin sessions` and `tandem admin revoke`: the /admin dashboard's sign-ins from a terminal."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import click

from bot.cli_options import config_option, fail
from bot.core.errors import BotError, ConfigError

ID_CHARS = 12  # how much of a session's id the list shows; any unique prefix names it


@click.group("admin")
def admin() -> None:
    """Sign-ins to the /admin dashboard: list them, revoke them."""


def _run(config: Path | None, work):
    """Run `work(AdminSessionRepo)` over the configured database, migrated first (a fresh data
    folder has no sessions rather than no table)."""
    from bot.settings import load_settings
    from bot.storage.admin_sessions import AdminSessionRepo
    from bot.storage.database import Database

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc)

    async def go():
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
            return await work(AdminSessionRepo(db))
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except BotError as exc:
        fail(exc)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@admin.command("sessions")
@config_option
def sessions(config: Path | None) -> None:
    """List the sessions still valid: id, when created, when it expires, and where from."""
    active = _run(config, lambda repo: repo.active())
    if not active:
        click.echo("no active admin sessions")
        return
    click.echo(f"{'id':<{ID_CHARS}}  {'created':<20}  {'expires':<20}  client")
    for record in active:
        click.echo(f"{record.id[:ID_CHARS]:<{ID_CHARS}}  {_when(record.created_at):<20}  "
                   f"{_when(record.expires_at):<20}  {record.client or '-'}")


@admin.command("revoke")
@config_option
@click.argument("id_prefix", required=False)
def revoke(config: Path | None, id_prefix: str | None) -> None:
    """Revoke every active session, or the one whose id starts with ID_PREFIX (as `tandem admin
    sessions` shows it). A revoked browser gets the sign-in form on its next request."""

    async def work(repo) -> int:
        if id_prefix is None:
            return await repo.revoke_all()
        prefix = id_prefix.strip().lower()
        matches = [r.id for r in await repo.active() if prefix and r.id.startswith(prefix)]
        if not matches:
            raise BotError(f"no active admin session has an id starting with {id_prefix!r}")
        if len(matches) > 1:
            raise BotError(f"{len(matches)} active admin sessions have ids starting with {id_prefix!r}; "
                           "give more of the id")
        return int(await repo.revoke(matches[0]))

    revoked = _run(config, work)
    click.echo(f"revoked {revoked} admin session{'' if revoked == 1 else 's'}")
