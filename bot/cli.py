"""The `tandem` command: run the server, chat in the terminal, migrate, and the tool groups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import click

from bot.cli_options import config_option
from bot.cli_options import fail as _fail
from bot.core.errors import BotError, ConfigError


def _settings(config: Path | None):
    from bot.settings import load_settings

    return load_settings(config)


def _setup_logging(level: str, stream=None) -> None:
    logging.basicConfig(
        level=level, stream=stream or sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )




@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Tandem: a socialbot and story co-writing assistant."""
    from bot.app import SHIPPED_SKILLS

    ctx.obj = {"skill_names": {skill.name for skill in SHIPPED_SKILLS}}


@main.command()
@config_option
@click.option("--host", help="Listen address (default from settings: 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default from settings: 8080).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes sharing the port (SO_REUSEPORT), supervised by this one.")
def run(config: Path | None, host: str | None, port: int | None, workers: int) -> None:
    """Migrate the database and serve the web API (and Telegram when a token is set)."""
    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail(exc)
    _setup_logging(settings.log_level)
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    try:
        if workers > 1:
            from bot.workers import serve_workers

            sys.exit(asyncio.run(serve_workers(settings, config, host, port, workers)))
        asyncio.run(_serve(settings, host, port))
    except BotError as exc:
        _fail(exc)


async def _serve(settings, host: str, port: int) -> None:
    from aiohttp import web

    from bot.app import build_app, check_language_model, prepare_language_model
    from bot.core.annotations import warm_up_annotators
    from bot.server import init_app
    from bot.workers import watch_supervisor, worker_index

    # A worker of `tandem run --workers N`: the parent migrated, and the port is shared.
    worker = worker_index()
    await prepare_language_model(settings)
    tandem = await build_app(settings, migrate=worker is None)
    try:
        await check_language_model(tandem.language_model, settings.lm.model)
    except BaseException:
        await tandem.close()
        raise
    runner = web.AppRunner(init_app(tandem), access_log=None)
    await runner.setup()
    warming = (asyncio.create_task(warm_up_annotators(tandem.annotators), name="warm-up")
               if settings.nlu.warm_up_languages else None)
    try:
        site = web.TCPSite(runner, host, port, reuse_port=worker is not None)
        try:
            await site.start()
        except OSError as exc:
            raise BotError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound_port = runner.addresses[0][1] if runner.addresses else port
        if worker is None:
            click.echo(f"Tandem is running at http://{host}:{bound_port}/  (Ctrl+C to stop)", err=True)
        else:
            click.echo(f"Tandem worker {worker} is running at http://{host}:{bound_port}/  (pid {os.getpid()})",
                       err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watching = asyncio.create_task(watch_supervisor(stop))
        await stop.wait()
        watching.cancel()
    finally:
        if warming is not None:
            warming.cancel()  # a load in its worker thread finishes there; tandem.close() stops it
            with contextlib.suppress(asyncio.CancelledError):
                await warming
        await runner.cleanup()
        await tandem.close()


@main.command()
@config_option
@click.option("--user", "user_id", help="Who you are to the bot (default: your login name).")
def chat(config: Path | None, user_id: str | None) -> None:
    """Chat in the terminal; reads stdin line by line, so input can be piped."""
    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail(exc)
    _setup_logging("WARNING")
    try:
        asyncio.run(_chat(settings, user_id))
    except BotError as exc:
        _fail(exc)


async def _chat(settings, user_id: str | None) -> None:
    from bot.app import build_app, prepare_language_model, warm_up
    from bot.channels.terminal import chat_loop

    await prepare_language_model(settings)
    tandem = await build_app(settings)
    warming = asyncio.create_task(warm_up(tandem.language_model))
    try:
        await chat_loop(tandem.handle_turn, user_id=user_id)
    finally:
        warming.cancel()
        await tandem.close()


@main.command()
@config_option
def migrate(config: Path | None) -> None:
    """Bring the database schema up to date (tandem run does this too)."""
    from bot.storage.database import Database, safe_url

    try:
        settings = _settings(config)
    except ConfigError as exc:
        _fail(exc)

    async def go() -> None:
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
        finally:
            await db.close()

    try:
        asyncio.run(go())
    except BotError as exc:
        _fail(exc)
    click.echo(f"database up to date: {safe_url(settings.resolved_database_url)}")


def _add_tool_groups() -> None:
    from bot.dialog.cli import graph
    from bot.doctor import doctor
    from bot.evaluation.cli import eval_group, story_group
    from bot.models.cli import model
    from bot.nlu.cli import nlu
    from bot.web.admin_cli import admin
    from bot.web.cli import feedback

    for group in (graph, nlu, feedback, admin, model, doctor, eval_group, story_group):
        main.add_command(group)


_add_tool_groups()

if __name__ == "__main__":
    main()
