"""SmallTalkSkill: short generated chat replies in Tandem's persona, checked for safety, with a
nudge toward writing a story when it fits."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import ConfigError, ModelError
from bot.core.skill import Skill, SkillConfig, Turn
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.story.polish import PassageFilter
from bot.story.settings import STOP_STRINGS
from skills.safety import OutputSafety

log = logging.getLogger(__name__)

PERSONA_FILE = Path(__file__).with_name("persona.yaml")
LANGUAGE_NAMES = {"en": "English", "ru": "Russian"}
PerLanguage = dict[str, str]


class Nudge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_turns: int = Field(4, ge=1)
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    text: PerLanguage
    suggestion: PerLanguage


class Persona(BaseModel):
    """skills/persona.yaml: who Tandem is in small talk."""

    model_config = ConfigDict(extra="forbid")

    name: str
    tone: PerLanguage
    about: PerLanguage
    capabilities: dict[str, list[str]]
    nudge: Nudge
    safe_replies: dict[str, list[str]]
    fallback_replies: dict[str, list[str]]

    @classmethod
    def load(cls, path: Path) -> Persona:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the persona: {exc}") from exc
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"{path}: `{'.'.join(map(str, err['loc']))}`: {err['msg']}") from exc


class SmallTalkConfig(SkillConfig):
    persona_file: Path = PERSONA_FILE
    # Earlier messages given to the model as context.
    history_turns: int = Field(6, ge=0, le=20)
    max_new_tokens: int = Field(60, ge=8, le=256)
    temperature: float = Field(0.7, ge=0, le=2)
    max_sentences: int = Field(3, ge=1, le=5)
    # Probability threshold of the offensive-language classifier (when installed).
    safety_threshold: float = Field(0.85, gt=0, le=1)
    use_classifier: bool = True


class SmallTalkSkill(Skill):
    name = "smalltalk"
    intents = ("chitchat",)
    description = "Chats in Tandem's persona with short generated replies."
    config_model = SmallTalkConfig
    time_budget_s = 60.0

    def __init__(self, config: SmallTalkConfig | None = None, *, model: LanguageModel | None = None,
                 safety: OutputSafety | None = None) -> None:
        super().__init__(config)
        self.persona = Persona.load(Path(self.config.persona_file))
        self.model = model
        self.safety = safety or OutputSafety(use_classifier=self.config.use_classifier,
                                             threshold=self.config.safety_threshold)
        self._started = False

    async def respond(self, turn: Turn) -> str:
        language = turn.language if turn.language in LANGUAGE_NAMES else "en"
        reply = await self._generate(turn, language)
        if reply is None:
            reply = self._pick(self.persona.fallback_replies, language)
        elif await self.safety.is_unsafe(reply):
            log.info("smalltalk reply replaced as unsafe conversation=%s", turn.conversation_id)
            turn.data["smalltalk_replaced"] = True
            reply = self._pick(self.persona.safe_replies, language)
        return reply + self._nudge(turn, language, reply)

    def prompt(self, turn: Turn, language: str) -> list[ChatMessage]:
        persona = self.persona
        capabilities = "; ".join(persona.capabilities.get(language) or persona.capabilities["en"])
        system = (
            f"You are {persona.name}, {_get(persona.about, language)}. Your manner: {_get(persona.tone, language)}. "
            f"You can: {capabilities}. Reply in {LANGUAGE_NAMES[language]}, in one to three short sentences, "
            "as a friendly chat message. Never be rude, never give harmful advice."
        )
        messages = [ChatMessage("system", system)]
        for item in turn.history[-self.config.history_turns:] if self.config.history_turns else []:
            if item.author != "user" and item.skill != self.name:
                # Canned lines (the fallback, help, a graph's nodes) shown as the model's own words
                # are what it then repeats ("I can write a story with you…"): only its own replies go in.
                continue
            _add(messages, "user" if item.author == "user" else "assistant", item.text[:500])
        _add(messages, "user", turn.text)
        return messages

    async def _generate(self, turn: Turn, language: str) -> str | None:
        if self.model is None:
            return None
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  stop=STOP_STRINGS)
        try:
            if not self._started:
                await self.model.start()
                self._started = True
            raw = await self.model.generate(self.prompt(turn, language), params)
        except ModelError as exc:
            log.warning("smalltalk generation failed conversation=%s: %s", turn.conversation_id, exc)
            return None
        return self.shorten(raw, language)

    def shorten(self, raw: str, language: str) -> str | None:
        """At most `max_sentences` whole sentences in the user's language, or None."""
        filt = PassageFilter((), language)
        sentences: list[str] = []
        for piece in (filt.feed(raw), filt.finish()):
            if piece:
                sentences.append(piece)
        text = "".join(sentences).strip()
        if not text or filt.wrong_language:
            return None
        parts = _split_sentences(text)
        return " ".join(parts[: self.config.max_sentences]).strip() or None

    def _nudge(self, turn: Turn, language: str, reply: str) -> str:
        nudge = self.persona.nudge
        since = int(turn.state.get("since_nudge", 0)) + 1
        words = nudge.keywords.get(language, []) + nudge.keywords.get("en", [])
        topical = any(w.lower() in turn.text.lower() for w in words)
        already = "story" in reply.lower() or "истори" in reply.lower()
        if already or not (topical or since >= nudge.every_turns):
            turn.state["since_nudge"] = since
            return ""
        turn.state["since_nudge"] = 0
        turn.suggest(_get(nudge.suggestion, language))
        turn.data["nudge"] = "story"
        return " " + _get(nudge.text, language)

    @staticmethod
    def _pick(options: dict[str, list[str]], language: str) -> str:
        return random.choice(options.get(language) or options["en"])

    async def close(self) -> None:
        """The model belongs to the composition root, which closes it."""


def _get(texts: dict[str, Any], language: str) -> str:
    return texts.get(language) or texts["en"]


def _split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?…])\s+", text) if s.strip()]


def _add(messages: list[ChatMessage], role: str, text: str) -> None:
    """Append, joining a message to the one before it of the same role: some chat templates
    refuse two user messages in a row (left so by a canned reply that was not shown)."""
    if len(messages) > 1 and messages[-1].role == role:
        messages[-1] = ChatMessage(role, f"{messages[-1].content}\n{text}")
    else:
        messages.append(ChatMessage(role, text))
