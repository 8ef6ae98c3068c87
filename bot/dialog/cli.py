"""`tandem graph check` and `tandem graph draw`: validate dialog graphs and draw one flow."""

from __future__ import annotations

from pathlib import Path

import click

from bot.core.errors import ConfigError
from bot.dialog.draw import FORMATS, draw_flow
from bot.dialog.flows import FlowRegistry
from bot.nlu.catalogue import IntentCatalogue
from bot.resources import default_folder


@click.group("graph")
def graph() -> None:
    """Validate and draw dialog graphs."""


@graph.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--intents", "intents_path", type=click.Path(path_type=Path), default=None,
              help="Intent catalogue file or folder (default: ./intents when there is one, else the shipped one).")
@click.option("--skills", default=None,
              help="Comma-separated skill names that actions.skill may name "
                   "(default: the bot's registered skills when run as `tandem graph`, else not checked).")
@click.pass_context
def check(ctx: click.Context, path: Path | None, intents_path: Path | None, skills: str | None) -> None:
    """Validate every flow of PATH (default: ./dialog_graphs when there is one, else the shipped
    graphs); exit 1 on any error."""
    try:
        path = path or default_folder("dialog_graphs")
        catalogue = IntentCatalogue.load(intents_path or default_folder("intents"))
        if skills is not None:
            known_skills = {s.strip() for s in skills.split(",") if s.strip()}
        else:
            # The `tandem` command puts its skill names on the context; this module stays below the app.
            known_skills = (ctx.find_root().obj or {}).get("skill_names")
        registry = FlowRegistry.load(path, known_intents=set(catalogue.names), known_skills=known_skills)
    except ConfigError as exc:  # a GraphError or CatalogueError, or no shipped folder to check
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc
    click.echo(f"ok: {len(registry)} flows, {registry.node_count} nodes")


@graph.command("draw")
@click.argument("flow_id", metavar="FLOW")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help=f"Picture to write; the suffix picks the format ({', '.join(FORMATS)}).")
@click.option("--graphs", "graphs_path", type=click.Path(path_type=Path), default=None,
              help="Dialog graph file or folder (default: ./dialog_graphs when there is one, else the shipped ones).")
def draw(flow_id: str, output: Path, graphs_path: Path | None) -> None:
    """Draw FLOW (a flow id, the file stem) to a picture people can read."""
    if output.suffix.lower() not in FORMATS:
        raise click.BadParameter(f"use a file ending in {', '.join(FORMATS)}", param_hint="-o/--output")
    try:
        # Intents and skills are not checked here: drawing a half-wired graph is how one designs it.
        registry = FlowRegistry.load(graphs_path or default_folder("dialog_graphs"))
    except ConfigError as exc:  # a GraphError, or no shipped graphs to draw from
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc
    if flow_id not in registry:
        known = ", ".join(sorted(registry.flows)) or "none"
        raise click.BadParameter(f"unknown flow {flow_id!r} (known: {known})", param_hint="FLOW")
    draw_flow(registry.flows[flow_id], output)
    click.echo(f"wrote {output}")
