"""The intent catalogue: intents with descriptions, examples and rules per language, from YAML files."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.core.errors import CatalogueError

LANGUAGES = ("en", "ru")
_INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class IntentRule(BaseModel):
    """A deterministic rule that pins an intent: a regex, whole-word keywords, or a /command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str | None = None
    keywords: tuple[str, ...] = ()
    command: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> IntentRule:
        given = [self.regex is not None, bool(self.keywords), self.command is not None]
        if sum(given) != 1:
            raise ValueError("a rule has exactly one of `regex`, `keywords`, `command`")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from exc
        if self.command is not None and not re.fullmatch(r"/[a-z0-9_]{1,32}", self.command):
            raise ValueError(f"a command looks like /name, got {self.command!r}")
        return self


class Intent(BaseModel):
    """One intent. Texts are per language: {'en': [...], 'ru': [...]}; a plain list means English."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    descriptions: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    examples: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    rules: tuple[IntentRule, ...] = ()

    @field_validator("descriptions", "examples", mode="before")
    @classmethod
    def _per_language(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"en": [value]}
        if isinstance(value, list):
            return {"en": value}
        if isinstance(value, dict):
            return {lang: [texts] if isinstance(texts, str) else texts for lang, texts in value.items()}
        return value

    @field_validator("descriptions", "examples")
    @classmethod
    def _known_languages(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for lang in value:
            if lang not in LANGUAGES:
                raise ValueError(f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
        return value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _INTENT_NAME.match(value):
            raise ValueError(f"intent names are lowercase identifiers, got {value!r}")
        return value

    def texts(self, kind: str, language: str | None = None) -> list[str]:
        """All descriptions or examples, of one language or of all."""
        source = self.descriptions if kind == "descriptions" else self.examples
        if language is not None:
            return list(source.get(language, ()))
        return [t for texts in source.values() for t in texts]


class IntentCatalogue:
    """All intents a bot knows, keyed by name, with a fingerprint for cache invalidation."""

    def __init__(self, intents: Iterable[Intent], sources: Iterable[Path] = ()) -> None:
        self.intents: dict[str, Intent] = {}
        for intent in intents:
            if intent.name in self.intents:
                raise CatalogueError(f"intent {intent.name!r} is defined twice")
            self.intents[intent.name] = intent
        self.sources = tuple(sources)

    def __contains__(self, name: object) -> bool:
        return name in self.intents

    def __iter__(self):
        return iter(self.intents.values())

    def __len__(self) -> int:
        return len(self.intents)

    @property
    def names(self) -> list[str]:
        return list(self.intents)

    def fingerprint(self) -> str:
        """A hash of the whole catalogue's content: cached embeddings are valid while it holds."""
        payload = json.dumps([i.model_dump(mode="json") for i in self.intents.values()], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def require(self, names: Iterable[str], where: str) -> None:
        """Fail start-up when `where` references an intent the catalogue lacks."""
        for name in names:
            if name not in self.intents:
                known = ", ".join(sorted(self.intents)) or "none"
                raise CatalogueError(f"{where}: unknown intent {name!r} (known: {known})")

    @classmethod
    def load(cls, path: Path) -> IntentCatalogue:
        """Load one YAML file, or every *.yaml file of a folder, each a mapping `intents: {name: {...}}`."""
        files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        if not files:
            raise CatalogueError(f"{path}: no intent files (*.yaml) found")
        intents: list[Intent] = []
        for file in files:
            intents.extend(_load_file(file))
        try:
            return cls(intents, files)
        except CatalogueError as exc:
            raise CatalogueError(f"{path}: {exc}") from exc


def _load_file(file: Path) -> list[Intent]:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{file}: cannot read intents: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
        raise CatalogueError(f"{file}: expected a mapping with a top-level `intents:` table")
    unknown = set(raw) - {"intents"}
    if unknown:
        raise CatalogueError(f"{file}: unknown top-level keys {sorted(unknown)}")
    intents = []
    for name, body in raw["intents"].items():
        try:
            intents.append(Intent.model_validate({"name": name, **(body or {})}))
        except ValidationError as exc:
            raise CatalogueError(f"{file}: intent {name!r}: {_first_error(exc)}") from exc
    return intents


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
