"""Loading an evaluation set: one YAML file or a folder of them, each a top-level list of items
validated by a pydantic model, with errors that name the file and the item."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import re

import yaml
from pydantic import BaseModel, ValidationError

from bot.core.errors import ConfigError

Item = TypeVar("Item", bound=BaseModel)
# An item's id or tag: lowercase letters, digits, - and _ (an id names a user of the run and a
# section of the report).
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class EvalSetError(ConfigError):
    """An evaluation set file is malformed; the message names the file and the item."""


def checked_id(value: str) -> str:
    """An item's id as given, when it is lowercase letters, digits, - and _ (a validator's body)."""
    if not SLUG.match(value):
        raise ValueError(f"an id is lowercase letters, digits, - and _, got {value!r}")
    return value


def describe_first_error(exc: ValidationError) -> str:
    """The first error of a validation, as "`field`: what is wrong"."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "missing"
    elif err["type"] == "extra_forbidden":
        message = "unknown key"
    return f"`{field}`: {message}" if field else message


def load_set(path: Path, model: type[Item], *, key: str, noun: str, file_kind: str | None = None,
             describe: Callable[[ValidationError], str] = describe_first_error) -> list[Item]:
    """Every item under `key:` of one file, or of every *.yaml of a folder, in file order. Each
    item gets `source` (its file); ids are unique across the whole set. `noun` names an item in
    the messages ("conversation", "story"), `file_kind` its files (`noun` unless given)."""
    path = Path(path)
    if not path.exists():
        raise EvalSetError(f"{path}: no such file or folder")
    files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    if not files:
        raise EvalSetError(f"{path}: no {file_kind or noun} files (*.yaml) found")
    items: list[Item] = []
    seen: dict[str, Path] = {}
    for file in files:
        for item in _load_file(file, model, key, noun, file_kind, describe):
            item_id = item.id  # type: ignore[attr-defined]
            if item_id in seen:
                raise EvalSetError(f"{file}: {noun} {item_id!r}: the id is used again (first in {seen[item_id]})")
            seen[item_id] = file
            items.append(item)
    return items


def _load_file(file: Path, model: type[Item], key: str, noun: str, file_kind: str | None,
               describe: Callable[[ValidationError], str]) -> list[Item]:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSetError(f"{file}: cannot read the {file_kind or noun} file: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get(key), list):
        raise EvalSetError(f"{file}: expected a mapping with a top-level `{key}:` list")
    unknown = set(raw) - {key}
    if unknown:
        raise EvalSetError(f"{file}: unknown top-level keys {sorted(unknown)}")
    items = []
    for index, body in enumerate(raw[key], start=1):
        name = body.get("id") if isinstance(body, dict) else None
        where = f"{file}: {noun} {name!r}" if name else f"{file}: {noun} #{index}"
        if not isinstance(body, dict):
            raise EvalSetError(f"{where}: expected a mapping, got {type(body).__name__}")
        if "source" in body:
            raise EvalSetError(f"{where}: `source`: the loader sets it; leave it out")
        try:
            items.append(model.model_validate({**body, "source": str(file)}))
        except ValidationError as exc:
            raise EvalSetError(f"{where}: {describe(exc)}") from exc
    return items
