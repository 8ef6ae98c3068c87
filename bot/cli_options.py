"""What every `tandem` command shares: the --config option and the way a command ends on a bad
setting (a module of its own so that the tool groups can import it without importing bot.cli,
which imports them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

config_option = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="TOML settings file (default: $TANDEM_CONFIG or ./tandem.toml).",
)


def fail(message: object) -> NoReturn:
    """End the command with `error: message` on stderr and exit status 2 (a usage or settings error)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
