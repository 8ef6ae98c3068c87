"""Where the data that ships with Tandem lies: migrations, intents and dialog graphs, installed or in a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from bot.core.errors import ConfigError

# The folder that holds bot/: the repository root in a checkout (an editable install, or PYTHONPATH
# pointing at it), site-packages (or pip's --target folder) in an installed copy.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

# Top-level folders of the repository that a wheel carries inside the bot package, as bot/<name>
# (pyproject.toml's [tool.setuptools.package-dir] maps them there).
SHIPPED_FOLDERS = ("migrations", "intents", "dialog_graphs")


def checkout() -> Path | None:
    """The source checkout this copy of Tandem runs from, or None in an installed copy (a wheel)."""
    return PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else None


def shipped_folder(name: str) -> Path:
    """The shipped folder `name` (one of SHIPPED_FOLDERS): bot/<name> in an installed copy, the
    repository's top-level <name>/ in a checkout; ConfigError when neither is there."""
    if name not in SHIPPED_FOLDERS:
        raise ValueError(f"{name!r} is not one of the shipped folders {SHIPPED_FOLDERS}")
    installed = files("bot") / name
    # Alembic and the YAML loaders read folders from the file system: a copy inside a zip cannot serve.
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    root = checkout()
    if root is not None and (root / name).is_dir():
        return root / name
    raise ConfigError(f"the {name} folder that ships with Tandem is missing (looked for {installed}"
                      f"{f' and {root / name}' if root is not None else ''}): reinstall Tandem")


def default_folder(name: str) -> Path:
    """For the designer's tools (`tandem graph check`, `tandem nlu train`): ./<name> when the working
    folder has one, else the shipped folder."""
    here = Path(name)
    return here if here.exists() else shipped_folder(name)
