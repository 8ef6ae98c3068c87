"""The Skill plug-in: a class with declared attributes, validated when the class is defined."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from bot.core.annotations import Annotations
from bot.core.errors import ConfigError

_SKILL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SkillConfig(BaseModel):
    """Base of every skill's config model; unknown keys are an error at start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class HistoryItem:
    """One earlier message of the conversation, oldest first in `Turn.history`."""

    author: str
    text: str
    skill: str | None = None


@dataclass
class Turn:
    """Everything a skill sees of one turn, and the few things it may change.

    A skill reads the message, annotations, history and slots; it may change `slots`
    and its own `state`, keep the conversation for its next turn (`keep()`), offer
    quick replies (`suggest()`) and attach structured `data` for rich channels.
    """

    conversation_id: str
    user_id: int
    channel: str
    text: str
    language: str
    annotations: Annotations
    history: list[HistoryItem] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    suggestions: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    keep_active: bool = False
    reply_to_node: tuple[str, str] | None = None
    # The reply's final text when it is not what was streamed (see `rewrite`).
    rewritten: str | None = None
    # This skill held the conversation when the message came (it had called `keep()`), so the turn
    # continues what it was doing; False: the skill is entered afresh.
    was_holding: bool = False

    @property
    def intent(self) -> str | None:
        return self.annotations.intent_name

    def keep(self) -> None:
        """Send the next turn of this conversation to this skill again."""
        self.keep_active = True

    def release(self) -> None:
        """Let the dispatcher route the next turn normally (the default)."""
        self.keep_active = False

    def rewrite(self, text: str) -> None:
        """Make `text` the reply instead of the pieces streamed so far: a streamed part failed a check
        that could only be made once the reply was whole. Channels show the final reply in place of
        the stream, and it is what is stored."""
        self.rewritten = text

    def suggest(self, *texts: str) -> None:
        self.suggestions.extend(t for t in texts if t)

    def say(self, texts: Mapping[str, str]) -> str:
        """Pick the text for the user's language from {'en': ..., 'ru': ...}, English by default."""
        return texts.get(self.language) or texts.get("en") or next(iter(texts.values()))


SkillResult = str | AsyncIterator[str]


@dataclass(frozen=True)
class AsideCheck:
    """The texts of the check a skill that takes free text (a story) asks about a message that looks
    meant for the bot instead ("how are you?" in a story), each {language: text}: the question, the
    two quick replies, and a line added after the aside is answered, leading back to the skill."""

    question: Mapping[str, str]
    add: Mapping[str, str]
    leave: Mapping[str, str]
    back: Mapping[str, str]


class Skill:
    """Base class of skills. Subclasses declare:

    - `name`: registry key, config table (`[skills.NAME]`) and log field;
    - `intents`: the intents it serves (checked against the catalogue at start-up);
    - `config_model`: a SkillConfig subclass for its settings;
    - `time_budget_s`: overrides the dispatcher's per-turn budget (generation is slower);
    - `aside_check`: a skill that takes free text asks this before taking a message meant for the bot;
    - `follows_up`: an unclaimed message right after this skill's reply comes back to it;
    - `selectable`: may answer beside other skills, for the response selector to choose from;
    and implement `respond(turn)`, either `async def` returning the reply text, or an
    async generator yielding it in pieces (streamed to channels that can show it).
    """

    name: ClassVar[str]
    intents: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    config_model: ClassVar[type[SkillConfig]] = SkillConfig
    time_budget_s: ClassVar[float | None] = None
    # Set by a skill that holds the conversation for free text: a message meant for the bot is then
    # checked with the user before the skill takes it (bot/dispatch/asides.py). None: it takes all.
    aside_check: ClassVar[AsideCheck | None] = None
    # A message nothing else is sure of, right after this skill's reply, is taken as an answer to it
    # and comes back here (small talk: the user answers its question).
    follows_up: ClassVar[bool] = False
    # May answer beside other skills for the response selector, its reply thrown away if another is
    # chosen: only a skill whose answer changes nothing outside the turn (no story, no stored rating).
    selectable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _SKILL_NAME.match(name):
            raise ConfigError(f"skill class {cls.__qualname__}: `name` must be a lowercase identifier, got {name!r}")
        if isinstance(cls.intents, str) or not all(isinstance(i, str) for i in cls.intents):
            raise ConfigError(f"skill {name!r}: `intents` must be a tuple of intent names")
        cls.intents = tuple(cls.intents)
        if not (isinstance(cls.config_model, type) and issubclass(cls.config_model, SkillConfig)):
            raise ConfigError(f"skill {name!r}: `config_model` must subclass SkillConfig")
        if cls.respond is Skill.respond:
            raise ConfigError(f"skill {name!r}: define `respond(self, turn)`")

    def __init__(self, config: SkillConfig | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = self.config_model()
        elif not isinstance(config, SkillConfig):
            config = self.config_model.model_validate(dict(config))
        self.config = config

    def respond(self, turn: Turn) -> Any:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError

    def is_command(self, text: str) -> bool:
        """Whether `text` is one of this skill's own commands (never an aside); most skills have none."""
        return False

    async def close(self) -> None:
        """Release resources at shut-down (models, connections); most skills hold none."""
