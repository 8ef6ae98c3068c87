"""SmallTalkSkill: short generated chat replies in Tandem's persona, streamed as they are written,
shaped by the user's mood and what they told about themselves, checked for safety, with a nudge
toward writing a story when it fits."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import ConfigError, ModelError
from bot.core.register import formal_address
from bot.core.skill import Skill, SkillConfig, Turn
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.story.settings import STOP_STRINGS
from skills.safety import OutputSafety
from skills.smalltalk_gate import ReplyGate

log = logging.getLogger(__name__)

PERSONA_FILE = Path(__file__).with_name("persona.yaml")
LANGUAGE_NAMES = {"en": "English", "ru": "Russian"}
# Added to the instructions when a Russian reply came out with «вы».
INFORMAL_AGAIN = ("Important: speak to the user as a friend, with the informal «ты» (ты, тебя, тебе, твой; "
                  "напиши, расскажи). Never use «вы», «вас», «вам», «ваш» or imperatives ending in «-ите».")
PerLanguage = dict[str, str]


class Nudge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_turns: int = Field(4, ge=1)
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    text: PerLanguage
    suggestion: PerLanguage


class Mood(BaseModel):
    """How to answer a message in one mood: words that show it (per language) and guidance for the model."""

    model_config = ConfigDict(extra="forbid")

    words: dict[str, list[str]] = Field(default_factory=dict)
    # The sentiment annotator's label that also shows it (VADER reads English only).
    sentiment: str | None = None
    guidance: str
    nudge: bool = True  # whether a story may be suggested in this mood


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
    # Checked in order; the first that matches shapes the reply.
    moods: dict[str, Mood] = Field(default_factory=dict)

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
    selectable = True  # its answer changes nothing outside the turn
    intents = ("chitchat",)
    description = "Chats in Tandem's persona with short generated replies."
    config_model = SmallTalkConfig
    time_budget_s = 60.0
    # "nothing really, just a grey mood" answers the last reply: it is small talk's to answer.
    follows_up = True

    def __init__(self, config: SmallTalkConfig | None = None, *, model: LanguageModel | None = None,
                 safety: OutputSafety | None = None) -> None:
        super().__init__(config)
        self.persona = Persona.load(Path(self.config.persona_file))
        self.model = model
        self.safety = safety or OutputSafety(use_classifier=self.config.use_classifier,
                                             threshold=self.config.safety_threshold)
        self._started = False

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        language = turn.language if turn.language in LANGUAGE_NAMES else "en"
        mood = await self.mood_of(turn)
        if mood is not None:
            turn.data["mood"] = mood
        gate = ReplyGate(language, self.config.max_sentences, self.safety.listed)
        async for shown in self._stream(turn, language, mood, gate):
            yield shown
        reply = gate.final()
        if reply is not None and language == "ru" and formal_address(reply):
            reply = await self._informal_again(turn, mood, reply)
        if reply is None:
            if gate.reason == "unsafe":
                reply = self._replace_unsafe(turn, language)
            else:
                reply = self._pick(self.persona.fallback_replies, language)
                turn.data["declined"] = True  # a stock line: the response selector prefers a real answer
        elif await self.safety.is_unsafe(reply):
            reply = self._replace_unsafe(turn, language)
        nudge = self._nudge(turn, language, reply, mood)
        if reply == gate.shown.strip():
            yield nudge  # what was shown stands: only the nudge is added
        else:
            turn.rewrite(reply + nudge)

    def prompt(self, turn: Turn, language: str, mood: str | None = None) -> list[ChatMessage]:
        persona = self.persona
        capabilities = "; ".join(persona.capabilities.get(language) or persona.capabilities["en"])
        system = (
            f"You are {persona.name}, {_get(persona.about, language)}. Your manner: {_get(persona.tone, language)}. "
            f"You can: {capabilities}. Reply in {LANGUAGE_NAMES[language]}, in one to three short sentences, "
            "as a friendly chat message. Never be rude, never give harmful advice."
        )
        if language == "ru":
            # The model's default Russian is the polite «вы»; Tandem speaks to everyone as «ты».
            system += " Address the user informally, with «ты», never «вы»."
        known = self._what_the_user_told(turn)
        if known:
            system += f" {known}"
        if mood is not None and mood in persona.moods:
            system += f" {persona.moods[mood].guidance}"
        messages = [ChatMessage("system", system)]
        for item in turn.history[-self.config.history_turns:] if self.config.history_turns else []:
            if item.author != "user" and item.skill != self.name:
                # Canned lines (the fallback, help, a graph's nodes) shown as the model's own words
                # are what it then repeats ("I can write a story with you…"): only its own replies go in.
                continue
            _add(messages, "user" if item.author == "user" else "assistant", item.text[:500])
        _add(messages, "user", turn.text)
        return messages

    async def mood_of(self, turn: Turn) -> str | None:
        """The first persona mood the message shows, by its words or the sentiment annotator."""
        text = turn.text.lower()
        sentiment = await turn.annotations.value("sentiment")
        label = sentiment.get("label") if isinstance(sentiment, dict) else None
        for name, mood in self.persona.moods.items():
            words = mood.words.get(turn.language, []) + mood.words.get("en", [])
            if any(re.search(rf"(?<!\w){re.escape(w.lower())}", text) for w in words):
                return name
            if mood.sentiment is not None and label == mood.sentiment:
                return name
        return None

    async def _stream(self, turn: Turn, language: str, mood: str | None, gate: ReplyGate) -> AsyncIterator[str]:
        """The model's reply as the gate lets it through; nothing when there is no model or it failed."""
        if self.model is None:
            return
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  stop=STOP_STRINGS)
        try:
            if not self._started:
                await self.model.start()
                self._started = True
            pieces = self.model.stream(self.prompt(turn, language, mood), params)
            try:
                async for piece in pieces:
                    shown = gate.feed(piece)
                    if shown:
                        yield shown
                    if gate.stopped:
                        break  # closing the stream stops the generation
            finally:
                await pieces.aclose()
            rest = gate.finish()
            if rest:
                yield rest
        except ModelError as exc:
            # A reply cut off mid-word is not one: the persona's line replaces it; the model's restart
            # is the runtime's job.
            gate.fail()
            log.warning("smalltalk generation failed conversation=%s: %s", turn.conversation_id, exc)

    async def _informal_again(self, turn: Turn, mood: str | None, reply: str) -> str:
        """A Russian reply that says «вы» to the user, written once more with the point made again;
        the one with fewer formal words is kept. (Small models fall back on the help-desk «вы».)"""
        turn.data["register_retry"] = True
        messages = self.prompt(turn, "ru", mood)
        messages[0] = ChatMessage("system", messages[0].content + " " + INFORMAL_AGAIN)
        params = GenerationParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  stop=STOP_STRINGS)
        try:
            raw = await self.model.generate(messages, params)  # type: ignore[union-attr]
        except ModelError as exc:
            log.warning("smalltalk second try failed conversation=%s: %s", turn.conversation_id, exc)
            return reply
        gate = ReplyGate("ru", self.config.max_sentences, self.safety.listed)
        gate.feed(raw)
        gate.finish()
        again = gate.final()
        if again is None or len(formal_address(again)) >= len(formal_address(reply)):
            return reply
        return again

    def _replace_unsafe(self, turn: Turn, language: str) -> str:
        log.info("smalltalk reply replaced as unsafe conversation=%s", turn.conversation_id)
        turn.data["smalltalk_replaced"] = True
        return self._pick(self.persona.safe_replies, language)

    @staticmethod
    def _what_the_user_told(turn: Turn) -> str:
        """The slots the dispatcher keeps from what the user said about themselves, for the prompt."""
        parts = []
        name = turn.slots.get("user_name")
        if isinstance(name, str) and name:
            parts.append(f"The user's name is {name}.")
        likes = [x for x in turn.slots.get("user_likes") or () if isinstance(x, str)]
        if likes:
            parts.append(f"They told you they like: {', '.join(likes[-5:])}.")
        return " ".join(parts)

    def _nudge(self, turn: Turn, language: str, reply: str, mood: str | None = None) -> str:
        nudge = self.persona.nudge
        if mood is not None and mood in self.persona.moods and not self.persona.moods[mood].nudge:
            return ""  # no story pitch to someone who is sad or angry
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


def _add(messages: list[ChatMessage], role: str, text: str) -> None:
    """Append, joining a message to the one before it of the same role: some chat templates
    refuse two user messages in a row (left so by a canned reply that was not shown)."""
    if len(messages) > 1 and messages[-1].role == role:
        messages[-1] = ChatMessage(role, f"{messages[-1].content}\n{text}")
    else:
        messages.append(ChatMessage(role, text))
