"""HelpSkill: tells the user what Tandem can do and how to ask for it."""

from __future__ import annotations

from bot.core.skill import Skill, SkillConfig, Turn

HELP_TEXT = {
    "en": (
        "I'm Tandem. Here is what I can do:\n"
        "• write a story together with you, passage by passage (say \"let's write a story\");\n"
        "• chat about this and that;\n"
        "• tell you a joke (\"tell me a joke\") or a fun fact (\"tell me a fun fact\");\n"
        "• tell you the date and time (\"what time is it?\");\n"
        "• remember your name and what you like (\"my name is …\", \"what do you know about me?\");\n"
        "• take your feedback: rate our conversation from 1 to 5 (say \"leave feedback\").\n"
        "Say \"cancel\" to stop what we're doing, or \"start over\" to begin again."
    ),
    "ru": (
        "Я Тандем. Вот что я умею:\n"
        "• писать вместе с тобой историю, отрывок за отрывком (скажи «давай напишем историю»);\n"
        "• болтать о том о сём;\n"
        "• рассказать анекдот («расскажи анекдот») или интересный факт («расскажи интересный факт»);\n"
        "• подсказать дату и время («который час?»);\n"
        "• запомнить, как тебя зовут и что ты любишь (напиши «меня зовут …», спроси «что ты обо мне знаешь?»);\n"
        "• принимать отзывы: оцени наш разговор от 1 до 5 (скажи «оставить отзыв»).\n"
        "Скажи «отмена», чтобы остановить текущее действие, или «начать заново»."
    ),
}
SUGGESTIONS = {
    "en": ("Let's write a story", "Tell me a joke", "Leave feedback"),
    "ru": ("Давай напишем историю", "Расскажи анекдот", "Оставить отзыв"),
}


class HelpConfig(SkillConfig):
    # Replace the built-in help text, per language ({"en": "...", "ru": "..."}).
    text: dict[str, str] = {}


class HelpSkill(Skill):
    name = "help"
    selectable = True  # its answer changes nothing outside the turn
    intents = ("help",)
    description = "Explains what Tandem can do."
    config_model = HelpConfig

    async def respond(self, turn: Turn) -> str:
        turn.suggest(*SUGGESTIONS.get(turn.language, SUGGESTIONS["en"]))
        return turn.say({**HELP_TEXT, **self.config.text})
