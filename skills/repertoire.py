"""Repertoire: short texts (jokes, facts) from data files, told without repeats within a conversation,
and RepertoireSkill, the base of the skills that tell them."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import field_validator

from bot.core.errors import ConfigError
from bot.core.skill import Skill, SkillConfig, Turn
from bot.nlu.catalogue import LANGUAGES

DATA_DIR = Path(__file__).with_name("data")
# Longer than this is a story, not a joke: a chat bubble, not a page.
MAX_ITEM_CHARS = 600


@dataclass(frozen=True)
class Item:
    """One text of a repertoire; `key` is a hash of the text, so what was told stays known when a
    data file gains, loses or reorders items between deployments."""

    key: str
    text: str


def load_items(path: Path) -> tuple[Item, ...]:
    """The items of one data file (`items:`, a list of non-empty texts); anything else stops
    start-up with a ConfigError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the data file: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"items"}:
        raise ConfigError(f"{path}: expected a mapping with one key, `items:` (a list of texts)")
    texts = raw["items"]
    if not isinstance(texts, list) or not texts:
        raise ConfigError(f"{path}: `items` must be a non-empty list of texts")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(texts, start=1):
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{path}: item {number} must be a non-empty text, got {text!r}")
        text = text.strip()
        if len(text) > MAX_ITEM_CHARS:
            raise ConfigError(f"{path}: item {number} is {len(text)} characters long (at most {MAX_ITEM_CHARS})")
        key = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        if key in seen:
            raise ConfigError(f"{path}: item {number} repeats item {seen[key]}")
        seen[key] = number
        items.append(Item(key, text))
    return tuple(items)


class Repertoire:
    """Items per language, and the choice of the next one for a conversation.

    What was told lives in the per-conversation `state` (the skill's `turn.state`), as item keys
    per language: `{"told": {"en": [...]}, "last": {"en": key}}`. Once every item of a language was
    told, the round starts over (and the caller is told so, to say it once).
    """

    def __init__(self, items: Mapping[str, tuple[Item, ...]], rng: random.Random | None = None) -> None:
        if not items:
            raise ConfigError("a repertoire needs items in at least one language")
        self.items = dict(items)
        self._rng = rng or random.Random()

    @classmethod
    def load(cls, files: Mapping[str, Path], rng: random.Random | None = None) -> Repertoire:
        return cls({language: load_items(Path(path)) for language, path in files.items()}, rng)

    def language_for(self, language: str) -> str:
        """The user's language when there are items in it, else English, else any."""
        if language in self.items:
            return language
        return "en" if "en" in self.items else next(iter(self.items))

    def pick(self, state: dict[str, Any], language: str) -> tuple[Item, bool]:
        """The next item in `language` not yet told in this conversation, and whether every item had
        been told, so this one starts a new round. Updates `state`."""
        language = self.language_for(language)
        items = self.items[language]
        told_by_language = state.setdefault("told", {})
        told = [k for k in told_by_language.get(language) or () if isinstance(k, str)]
        known = {item.key for item in items}
        told_set = {k for k in told if k in known}
        fresh = [item for item in items if item.key not in told_set]
        restarted = not fresh
        if restarted:
            # A new round; not the item that ended the last one, so two in a row never match.
            last = (state.get("last") or {}).get(language)
            fresh = [item for item in items if item.key != last] or list(items)
            told = []
        item = self._rng.choice(fresh)
        # Only keys still in the file are kept: an edited file does not make the list grow for ever.
        told_by_language[language] = [k for k in told if k in known] + [item.key]
        state.setdefault("last", {})[language] = item.key
        return item, restarted


class RepertoireConfig(SkillConfig):
    # The data file of each language ({"en": "path/to/file.yaml", ...}); a bot author may swap them.
    files: dict[str, Path] = {}

    @field_validator("files")
    @classmethod
    def _known_languages(cls, value: dict[str, Path]) -> dict[str, Path]:
        for language in value:
            if language not in LANGUAGES:
                raise ValueError(f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")
        return value


class RepertoireSkill(Skill):
    """Tells the next item of a repertoire. Subclasses declare `default_files` (language -> data file),
    `round_over` (said once when every item was told and the round starts over) and `more`
    (the quick reply asking for one more)."""

    abstract = True
    selectable = True  # what was told is kept in the turn's own state only
    config_model = RepertoireConfig
    default_files: ClassVar[dict[str, Path]]
    round_over: ClassVar[dict[str, str]]
    more: ClassVar[dict[str, str]]

    def __init__(self, config: RepertoireConfig | Mapping[str, Any] | None = None, *,
                 rng: random.Random | None = None) -> None:
        super().__init__(config)
        files = {**self.default_files, **self.config.files}
        self.repertoire = Repertoire.load(files, rng)

    def tell(self, turn: Turn) -> str:
        item, restarted = self.repertoire.pick(turn.state, turn.language)
        turn.suggest(turn.say(self.more))
        turn.data["repertoire"] = {"skill": self.name, "item": item.key}
        if restarted:
            return f"{turn.say(self.round_over)}\n\n{item.text}"
        return item.text

    async def respond(self, turn: Turn) -> str:
        return self.tell(turn)
