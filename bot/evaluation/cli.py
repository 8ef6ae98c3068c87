"""`tandem eval ...` and `tandem story eval`: run Tandem's own evaluation sets (the conversations, the
story openings) and report the pass rates."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from bot.cli_options import config_option
from bot.cli_options import fail as _fail
from bot.core.errors import BotError
from bot.resources import checkout
from bot.settings import PROJECT_ROOT

# The evaluation sets are developer data: they stay in the repository and are not installed, so an
# installed copy runs them with --set pointing into a checkout (see _settings_and_set).
DEFAULT_SET = PROJECT_ROOT / "evals" / "conversations"


def _settings_and_set(config: Path | None, load_set: Callable[[Path], list], set_path: Path):
    """The settings of a run whose report is its output (only warnings logged: the model worker's
    start-up lines would bury it) and the set it runs; a bad setting or set file ends it (exit 2)."""
    from bot.settings import load_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if set_path in (DEFAULT_SET, DEFAULT_STORY_SET) and checkout() is None:
        _fail(f"the evaluation sets are not installed with Tandem; they are in its source checkout: "
              f"pass --set CHECKOUT/evals/{set_path.name} (a file or a folder of them)")
    try:
        return load_settings(config).model_copy(update={"log_level": "WARNING"}), load_set(set_path)
    except BotError as exc:
        _fail(exc)


@click.group("eval")
def eval_group() -> None:
    """Evaluate the whole bot on its own conversation sets."""


@eval_group.command("conversations")
@config_option
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

    settings, cases = _settings_and_set(config, load_conversations, set_path)
    if only:
        cases = [case for case in cases if set(only) & set(case.all_tags)]
    if limit:
        cases = cases[:limit]
    if not cases:
        _fail("no conversation matches")
    concurrency = concurrency or (8 if model == FAKE else 1)
    click.echo(f"{len(cases)} conversations, {sum(len(c.turns) for c in cases)} turns; model {model}, "
               f"{concurrency} at a time", err=True)
    try:
        report = asyncio.run(_run(settings, cases, model, concurrency))
    except BotError as exc:
        _fail(exc)
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


# --- `tandem story ...` ------------------------------------------------------------------------------

DEFAULT_STORY_SET = PROJECT_ROOT / "evals" / "stories"
# In the checkout's test-artifacts/; in an installed copy, in the working folder's.
DEFAULT_STORY_REPORT = (checkout() or Path()) / "test-artifacts" / "story-eval.md"


@click.group("story")
def story_group() -> None:
    """Tools for the story co-writer: measure the passages it writes."""


@story_group.command("eval")
@config_option
@click.option("--set", "set_path", type=click.Path(path_type=Path), default=DEFAULT_STORY_SET,
              help="A story opening file, or a folder of them.  [default: evals/stories]")
@click.option("--model", default="default", show_default=True,
              help="fake (a scripted model: checks the plumbing, not the writing), default (the configured "
                   "lm.model), or any lm.model value.")
@click.option("--language", type=click.Choice(["en", "ru", "all"]), default="all", show_default=True,
              help="Only the openings in this language.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_STORY_REPORT,
              help="The Markdown file with both texts of every opening.  [default: test-artifacts/story-eval.md]")
@click.option("--limit", type=click.IntRange(min=1), help="Run only the first N openings (after --language).")
def story_eval_command(config, set_path, model, language, out, limit) -> None:
    """Continue every opening of the set with Tandem's story settings and with a naive prompt on the
    same model; print each check's pass rate per side and write both texts side by side."""
    from bot.evaluation.stories import evaluate_stories, format_markdown, format_table
    from bot.evaluation.story_set import load_openings

    settings, openings = _settings_and_set(config, load_openings, set_path)
    if language != "all":
        openings = [item for item in openings if item.language == language]
    openings = openings[:limit] if limit else openings
    if not openings:
        _fail(f"{set_path} has no openings in {language}")
    click.echo(f"{len(openings)} openings; model {model}; two texts each (tandem, naive)", err=True)

    def progress(result, done: int, total: int) -> None:
        marks = ", ".join(f"{side} {len(text.failed)} failed" for side, text in result.sides.items())
        click.echo(f"  [{done}/{total}] {result.item.id}: {marks}", err=True)

    try:
        report = asyncio.run(evaluate_stories(settings, openings, model, progress))
    except BotError as exc:
        _fail(exc)
    click.echo(format_table(report))
    out.parent.mkdir(parents=True, exist_ok=True)
    shown = set_path.relative_to(PROJECT_ROOT) if set_path.resolve().is_relative_to(PROJECT_ROOT) else set_path
    out.write_text(format_markdown(report, shown), encoding="utf-8")
    click.echo(f"wrote {out}", err=True)
