"""`tandem eval ...`: run Tandem's own evaluation sets (the conversation set) and report the pass rates."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import click

from bot.core.errors import BotError
from bot.settings import PROJECT_ROOT

DEFAULT_SET = PROJECT_ROOT / "evals" / "conversations"


@click.group("eval")
def eval_group() -> None:
    """Evaluate the whole bot on its own conversation sets."""


@eval_group.command("conversations")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML settings file (default: $TANDEM_CONFIG or ./tandem.toml).")
@click.option("--set", "set_path", type=click.Path(path_type=Path), default=DEFAULT_SET,
              help="A conversation file, or a folder of them.  [default: evals/conversations]")
@click.option("--model", default="default", show_default=True,
              help="fake (routes and the properties that need no model), default (the configured lm.model), "
                   "or any lm.model value.")
@click.option("--only", "only", multiple=True,
              help="Only conversations with this tag (or from this file: en, ru, mixed); repeat for several.")
@click.option("--limit", type=click.IntRange(min=1), help="Run only the first N conversations (after --only).")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Conversations run at once (default: 1 with a real model, 8 with the fake).")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the figures and every failure as JSON.")
@click.option("--min-pass", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Exit with 1 when the conversation pass rate is below this (e.g. 0.9).")
@click.option("--no-transcripts", is_flag=True, help="List the failed checks without the transcripts.")
def conversations_command(config, set_path, model, only, limit, concurrency, json_out, min_pass,
                          no_transcripts) -> None:
    """Replay the conversation set through a fresh Tandem and check every turn's route and reply."""
    from bot.evaluation.conversation_set import load_conversations
    from bot.evaluation.conversations import FAKE
    from bot.evaluation.report import format_report
    from bot.settings import load_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # The report is the output: the model worker's start-up lines would bury it.
        settings = load_settings(config).model_copy(update={"log_level": "WARNING"})
        cases = load_conversations(set_path)
    except BotError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if only:
        cases = [case for case in cases if set(only) & set(case.all_tags)]
    if limit:
        cases = cases[:limit]
    if not cases:
        click.echo("error: no conversation matches", err=True)
        sys.exit(2)
    concurrency = concurrency or (8 if model == FAKE else 1)
    click.echo(f"{len(cases)} conversations, {sum(len(c.turns) for c in cases)} turns; model {model}, "
               f"{concurrency} at a time", err=True)
    try:
        report = asyncio.run(_run(settings, cases, model, concurrency))
    except BotError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(format_report(report, transcripts=not no_transcripts))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        click.echo(f"wrote {json_out}", err=True)
    sys.exit(0 if report.pass_rate >= min_pass else 1)


async def _run(settings, cases, model: str, concurrency: int):
    from bot.evaluation.conversations import FAKE, eval_tandem, run_conversations

    def progress(result, done: int, total: int) -> None:
        mark = "pass" if result.passed else "FAIL"
        click.echo(f"  [{done}/{total}] {mark} {result.case.id}", err=True)

    async with eval_tandem(settings, model) as tandem:
        name = model if model == FAKE else tandem.settings.lm.model
        return await run_conversations(tandem, cases, with_model=model != FAKE, concurrency=concurrency,
                                       model_name=name, progress=progress)
