"""FallbackSkill: answers what nothing else claimed, politely, and points at what Tandem can do."""

from __future__ import annotations

from bot.core.skill import Skill, SkillConfig, Turn

# Short answers to social intents that no graph or skill took.
SOCIAL = {
    "thanks": {"en": "You're welcome!", "ru": "Пожалуйста!"},
    "goodbye": {"en": "Goodbye! Come back any time.", "ru": "До свидания! Возвращайтесь в любое время."},
    "cancel": {"en": "Okay, cancelled. What would you like to do next?", "ru": "Хорошо, отменил. Что дальше?"},
    "reset": {"en": "Okay, let's start over. What would you like to do?", "ru": "Хорошо, начнём сначала. Чем займёмся?"},
    "affirm": {"en": "Great! What would you like to do?", "ru": "Отлично! Чем займёмся?"},
    "deny": {"en": "No problem. What would you like to do instead?", "ru": "Хорошо. Чем займёмся вместо этого?"},
    "greeting": {"en": "Hi! How can I help?", "ru": "Привет! Чем помочь?"},
}
NOT_UNDERSTOOD = {
    "en": "I'm not sure I understood that. I can write a story with you, chat, or take your feedback. "
          "Type \"help\" to see everything.",
    "ru": "Кажется, я не понял. Я могу написать с вами историю, поболтать или принять отзыв. "
          "Напишите «помощь», чтобы увидеть всё.",
}
SUGGESTIONS = {"en": ("Help", "Let's write a story"), "ru": ("Помощь", "Давай напишем историю")}


class FallbackSkill(Skill):
    name = "fallback"
    intents = tuple(SOCIAL)
    description = "Answers anything nothing else understood, and says what Tandem can do."

    async def respond(self, turn: Turn) -> str:
        if turn.intent in SOCIAL:
            if turn.intent in ("goodbye",):
                turn.data["conversation_end"] = True
            return turn.say(SOCIAL[turn.intent])
        turn.suggest(*SUGGESTIONS.get(turn.language, SUGGESTIONS["en"]))
        return turn.say(NOT_UNDERSTOOD)
