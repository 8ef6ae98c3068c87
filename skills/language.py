"""LanguageSkill: the user's choice of language (a /language command, a language button), kept as
the conversation's `language` slot, which every later turn answers in."""

from __future__ import annotations

from bot.core.skill import Skill, Turn

LANGUAGES = ("en", "ru")
LANGUAGE_SET = {"en": "Okay, let's talk in English.", "ru": "Хорошо, говорим по-русски."}
LANGUAGE_ASK = {"en": "Which language shall we talk in? English or Russian?",
                "ru": "На каком языке будем говорить? По-английски или по-русски?"}


class LanguageSkill(Skill):
    name = "language"
    description = "Switches the language of the conversation (en, ru)."

    async def respond(self, turn: Turn) -> str:
        # A button names the language in the turn's metadata; a typed "/language ru" in its text.
        wanted = turn.metadata.get("language") or turn.text.removeprefix("/language").strip()
        code = wanted.lower()[:2] if isinstance(wanted, str) else ""
        if code not in LANGUAGES:
            turn.suggest("English", "Русский")
            return turn.say(LANGUAGE_ASK)
        turn.slots["language"] = code
        turn.data["language"] = code
        return LANGUAGE_SET[code]
