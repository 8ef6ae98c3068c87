"""FeedbackSkill: asks for a 1–5 rating of the conversation and an optional comment, and stores both."""

from __future__ import annotations

import re
from typing import Protocol

from bot.core.errors import NotFound
from bot.core.skill import Skill, SkillConfig, Turn

ASK_RATING = {
    "en": "How would you rate our conversation, from 1 (poor) to 5 (great)?",
    "ru": "Как ты оценишь наш разговор от 1 (плохо) до 5 (отлично)?",
}
ASK_AGAIN = {
    "en": "Please answer with a number from 1 to 5 (or say \"cancel\").",
    "ru": "Пожалуйста, ответь числом от 1 до 5 (или скажи «отмена»).",
}
ASK_COMMENT = {
    "en": "Thank you! Anything you'd like to add? Write a comment, or say \"skip\".",
    "ru": "Спасибо! Хочешь что-нибудь добавить? Напиши комментарий или скажи «пропустить».",
}
THANKS_COMMENT = {"en": "Thank you, your comment is saved.", "ru": "Спасибо, комментарий сохранён."}
THANKS_SKIP = {"en": "Thank you for the feedback!", "ru": "Спасибо за отзыв!"}
GAVE_UP = {"en": "No problem, let's leave the rating for now.", "ru": "Ничего страшного, оставим оценку на потом."}

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "один": 1, "одна": 1, "два": 2, "две": 2, "три": 3, "четыре": 4, "пять": 5,
}
_SKIP = re.compile(r"^\s*(skip|no|nope|nothing|пропустить|пропусти|нет|ничего)\s*[.!]*\s*$", re.IGNORECASE)


class FeedbackStore(Protocol):
    async def add_rating(self, conversation_id: str, user_id: int, value: int, comment: str | None = None,
                         channel: str | None = None) -> int: ...

    async def add_comment(self, conversation_id: str, user_id: int, text: str, message_id: int | None = None,
                          channel: str | None = None) -> int: ...

    async def add_offer(self, conversation_id: str, kind: str = "rating", channel: str | None = None) -> int: ...


class FeedbackConfig(SkillConfig):
    # Re-asks for a rating before giving up on an answer that is not 1–5.
    max_retries: int = 2
    ask_comment: bool = True


def parse_rating(text: str) -> int | None:
    """1–5 from "4", "4/5", "four", "пять", "★★★"; None when the text is not a rating."""
    stars = text.count("★") + text.count("⭐")
    if 1 <= stars <= 5 and not re.search(r"\d", text):
        return stars
    numbers = re.findall(r"(?<![\d.])(\d+)(?![\d.])", text)
    if len(numbers) >= 1 and numbers[0].isdigit() and 1 <= int(numbers[0]) <= 5:
        return int(numbers[0])
    for word in re.findall(r"\w+", text.lower()):
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    return None


class FeedbackSkill(Skill):
    name = "feedback"
    intents = ("feedback",)
    description = "Asks for a 1–5 rating and an optional comment."
    config_model = FeedbackConfig

    def __init__(self, config: FeedbackConfig | None = None, *, store: FeedbackStore) -> None:
        super().__init__(config)
        self.store = store

    async def respond(self, turn: Turn) -> str:
        step = turn.state.get("step")
        if isinstance(turn.metadata.get("rating"), int):
            # A rating button, whatever was asked before: the rating, then the comment step.
            return await self._take_rating(turn)
        if step == "rating":
            return await self._take_rating(turn)
        if step == "comment":
            return await self._take_comment(turn)
        return await self._ask_rating(turn)

    async def _ask_rating(self, turn: Turn) -> str:
        await self.store.add_offer(turn.conversation_id, "rating", turn.channel)
        turn.state.update(step="rating", retries=0)
        turn.keep()
        turn.suggest("1", "2", "3", "4", "5")
        turn.data["rating_request"] = True
        return turn.say(ASK_RATING)

    async def _take_rating(self, turn: Turn) -> str:
        clicked = turn.metadata.get("rating")
        value = clicked if isinstance(clicked, int) and 1 <= clicked <= 5 else parse_rating(turn.text)
        if value is None:
            turn.state["retries"] = turn.state.get("retries", 0) + 1
            if turn.state["retries"] > self.config.max_retries:
                turn.state.clear()
                return turn.say(GAVE_UP)
            turn.keep()
            turn.suggest("1", "2", "3", "4", "5")
            return turn.say(ASK_AGAIN)
        try:
            rating_id = await self.store.add_rating(turn.conversation_id, turn.user_id, value, channel=turn.channel)
        except NotFound:
            turn.state.clear()
            return turn.say(GAVE_UP)
        turn.data["rating"] = value
        if not self.config.ask_comment:
            turn.state.clear()
            return turn.say(THANKS_SKIP)
        turn.state.update(step="comment", rating_id=rating_id)
        turn.keep()
        turn.suggest("skip" if turn.language == "en" else "пропустить")
        return turn.say(ASK_COMMENT)

    async def _take_comment(self, turn: Turn) -> str:
        turn.state.clear()
        if _SKIP.match(turn.text) or turn.intent == "deny":
            return turn.say(THANKS_SKIP)
        await self.store.add_comment(turn.conversation_id, turn.user_id, turn.text, channel=turn.channel)
        return turn.say(THANKS_COMMENT)
