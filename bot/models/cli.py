"""`tandem model ...`: prepare the configured or a bundled model ahead of start-up, and show where models stand."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import click

from bot.cli_options import config_option
from bot.core.errors import BotError
from bot.models.bundled import BUNDLED, bundled_status
from bot.models.config import LmConfig

log = logging.getLogger(__name__)


def _settings(config: Path | None):
    from bot.settings import load_settings

    return load_settings(config)


@click.group("model")
def model() -> None:
    """Language models: join bundled ones, convert GGUF for transformers, try a prompt."""


@model.command("prepare")
@config_option
@click.option("--model", "model_name", default=None, help="override lm.model, e.g. bundled:smollm2")
@click.option("--backend", default=None, type=click.Choice(["auto", "llama_cpp", "transformers", "openai"]))
def prepare(config: Path | None, model_name: str | None, backend: str | None) -> None:
    """Join a split bundled model (with a progress bar) or convert a GGUF once, then load it."""
    from bot.models.runtime import build_language_model

    started = time.perf_counter()
    try:
        settings = _settings(config)
        lm = _override(settings.lm, model_name, backend)
        language_model = build_language_model(lm, Path(settings.data_dir), progress=True)
        asyncio.run(_start_and_close(language_model))
    except BotError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{lm.model}: ready ({type(language_model).__name__}, {time.perf_counter() - started:.1f} s)")


async def _start_and_close(language_model) -> None:
    await language_model.start()
    await language_model.close()


@model.command("info")
@config_option
def info(config: Path | None) -> None:
    """Show the configured model and the state of each bundled one."""
    try:
        settings = _settings(config)
    except BotError as exc:
        raise click.ClickException(str(exc)) from exc
    lm = settings.lm
    click.echo(f"lm.model = {lm.model}  (backend {lm.backend}, threads {lm.n_threads or 'all cores but one'}, "
               f"max_concurrent {lm.max_concurrent}, timeout {lm.timeout_s:g} s)")
    for key, state in bundled_status(Path(settings.data_dir)).items():
        click.echo(f"  bundled:{key:<14} {BUNDLED[key].description}")
        click.echo(f"  {'':<22} {state}")


@model.command("try")
@click.argument("prompt")
@config_option
@click.option("--model", "model_name", default=None)
@click.option("--backend", default=None, type=click.Choice(["auto", "llama_cpp", "transformers", "openai"]))
@click.option("--chat/--raw", default=True, help="chat template (default) or raw continuation")
@click.option("--max-new-tokens", default=120, show_default=True)
def try_prompt(config, model_name, backend, prompt: str, chat: bool, max_new_tokens: int) -> None:
    """Stream one answer to PROMPT, then print first-token time and speed."""
    from bot.models.base import ChatMessage
    from bot.models.runtime import build_language_model

    async def run() -> None:
        settings = _settings(config)
        lm = _override(settings.lm, model_name, backend)
        language_model = build_language_model(lm, Path(settings.data_dir), progress=True)
        await language_model.start()
        params = lm.sampling.params()
        params = type(params)(**{**params.__dict__, "max_new_tokens": max_new_tokens})
        request = [ChatMessage("user", prompt)] if chat else prompt
        started = time.perf_counter()
        first = None
        pieces = 0
        try:
            async for piece in language_model.stream(request, params):
                first = first or time.perf_counter() - started
                pieces += 1
                click.echo(piece, nl=False)
        finally:
            await language_model.close()
        total = time.perf_counter() - started
        click.echo(f"\n[first piece {1000 * (first or 0):.0f} ms, {pieces} pieces in {total:.1f} s]")

    try:
        asyncio.run(run())
    except BotError as exc:
        raise click.ClickException(str(exc)) from exc


def _override(lm: LmConfig, model_name: str | None, backend: str | None) -> LmConfig:
    changes = {k: v for k, v in (("model", model_name), ("backend", backend)) if v}
    return lm.model_copy(update=changes) if changes else lm
