"""FallbackSkill: answers what nothing else claimed, politely, and points at what Tandem can do.

It varies its words: never the same line twice in a row in a conversation, and after two
misunderstandings in a row a short line with buttons to click, instead of a third explanation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bot.core.skill import Skill, SkillConfig, Turn

# Short answers to social intents that no graph or skill took.
SOCIAL = {
    "thanks": {"en": "You're welcome!", "ru": "Пожалуйста!"},
    "goodbye": {"en": "Goodbye! Come back any time.", "ru": "До свидания! Возвращайся в любое время."},
    "cancel": {"en": "Okay, cancelled. What would you like to do next?", "ru": "Хорошо, отменил. Что дальше?"},
    "reset": {"en": "Okay, let's start over. What would you like to do?", "ru": "Хорошо, начнём сначала. Чем займёмся?"},
    "affirm": {"en": "Great! What would you like to do?", "ru": "Отлично! Чем займёмся?"},
    "deny": {"en": "No problem. What would you like to do instead?", "ru": "Хорошо. Чем займёмся вместо этого?"},
    "greeting": {"en": "Hi! How can I help?", "ru": "Привет! Чем помочь?"},
}
# A task or a lookup (intents/out_of_scope.yaml): honest about what Tandem cannot do, in varied words.
CANNOT: dict[str, tuple[str, ...]] = {
    "en": (
        "That's something I can't do: I don't look things up or act outside this chat, so no weather, news, "
        "bookings or sums. But I can write a story with you, chat, or tell you a joke.",
        "Sorry, that's outside what I can do here: I have no internet and no apps to run. "
        "I'm good for writing a story together, a chat, jokes and fun facts, though.",
        "I can't help with that one, I only live in this chat. Shall we write a story, or would you like a fun fact?",
    ),
    "ru": (
        "Этого я не умею: я ничего не ищу и не делаю за пределами чата, так что погоды, новостей, бронирования "
        "и расчётов не будет. Зато могу сочинить с тобой историю, поболтать или рассказать анекдот.",
        "Прости, это не по моей части: у меня нет интернета и приложений. Зато я умею писать истории, "
        "болтать, шутить и рассказывать интересные факты.",
        "С этим не помогу, я живу только в этом чате. Давай напишем историю или расскажу интересный факт?",
    ),
}
# The first answer to a message nothing understood: each says, in its own words, what Tandem can do
# (stories, chat, jokes and fun facts, the date and time, remembering a name, feedback) and how to
# see everything. Every language lists the same number of lines.
NOT_UNDERSTOOD: dict[str, tuple[str, ...]] = {
    "en": (
        ("I'm not sure I understood that. I can write a story with you, chat, tell a joke or a fun fact, "
         "or tell you the date and time. Type \"help\" to see everything."),
        ("Hmm, that one went over my head. We could write a story together, just chat, or I could tell you "
         "a joke. \"help\" lists everything I can do."),
        ("Sorry, I didn't catch that. Ask me for a fun fact or the time, or say \"let's write a story\". "
         "Tell me your name and I'll remember it. Type \"help\" for more."),
        ("I didn't quite get that. I'm good at writing stories together, small talk, jokes and fun facts, "
         "and you can rate our conversation too. Type \"help\" for the full list."),
        ("That's beyond me, I'm afraid. Want to start a story, hear a joke, or find out what day it is? "
         "\"help\" shows everything."),
    ),
    "ru": (
        ("Кажется, я не понял. Я могу сочинить с тобой историю, поболтать, рассказать анекдот или "
         "интересный факт, подсказать дату и время. Напиши «помощь», чтобы увидеть всё."),
        ("Хм, это я не уловил. Можем вместе написать историю, просто поговорить, или я расскажу анекдот. "
         "Всё, что я умею, покажет «помощь»."),
        ("Прости, не понял. Спроси у меня интересный факт или который час, или скажи «давай напишем "
         "историю». А если скажешь, как тебя зовут, я запомню. Подробнее — по слову «помощь»."),
        ("Не совсем понял тебя. Я умею писать истории вместе с тобой, болтать, шутить и рассказывать "
         "интересные факты, а ещё можно оценить наш разговор. Напиши «помощь» — там весь список."),
        ("Боюсь, это мне не по силам. Хочешь начать историю, услышать анекдот или узнать, какое сегодня "
         "число? «Помощь» покажет всё."),
    ),
}
SUGGESTIONS = {"en": ("Help", "Let's write a story"), "ru": ("Помощь", "Давай напишем историю")}
# The second misunderstanding in a row (and any after it): explaining again does not help, choices do.
STILL_LOST: dict[str, tuple[str, ...]] = {
    "en": ("Let me make it easier: pick one of these.", "Maybe one of these?", "Here's what I can do right now:"),
    "ru": ("Давай проще: выбери что-нибудь из этого.", "Может, что-то из этого?", "Вот что я могу прямо сейчас:"),
}
# Each of these is understood where it is clicked (intent rules, the small-talk and date/time skills).
CHOICES = {
    "en": ("Let's write a story", "Tell me a joke", "Tell me a fun fact", "What time is it?", "Help"),
    "ru": ("Давай напишем историю", "Расскажи анекдот", "Расскажи интересный факт", "Который час?", "Помощь"),
}
# Misunderstandings in a row after which the short line with choices is said.
STILL_LOST_AFTER = 2


class FallbackSkill(Skill):
    name = "fallback"
    selectable = True  # its answer changes nothing outside the turn
    intents = (*SOCIAL, "unsupported")
    description = "Answers anything nothing else understood, and says what Tandem can do."

    def __init__(self, config: SkillConfig | None = None, *, rng: random.Random | None = None) -> None:
        super().__init__(config)
        self._random = rng or random.Random()

    async def respond(self, turn: Turn) -> str:
        if turn.intent in SOCIAL:
            turn.state["missed"] = 0
            if turn.intent in ("goodbye",):
                turn.data["conversation_end"] = True
            return turn.say(SOCIAL[turn.intent])
        language = turn.language if turn.language in NOT_UNDERSTOOD else "en"
        if turn.intent == "unsupported":
            turn.state["missed"] = 0  # understood, only not served: no "pick one of these" next time
            turn.suggest(*SUGGESTIONS[language])
            return self._vary(turn, "cannot", CANNOT[language])
        missed = self._missed_before(turn) + 1
        turn.state["missed"] = missed
        if missed >= STILL_LOST_AFTER:
            turn.suggest(*CHOICES[language])
            return self._vary(turn, "still_lost", STILL_LOST[language])
        turn.suggest(*SUGGESTIONS[language])
        return self._vary(turn, "not_understood", NOT_UNDERSTOOD[language])

    @staticmethod
    def _missed_before(turn: Turn) -> int:
        """Misunderstandings in a row up to this turn: none unless this skill gave the last reply."""
        last_reply = next((item for item in reversed(turn.history) if item.author == "bot"), None)
        if last_reply is None or last_reply.skill != FallbackSkill.name:
            return 0
        missed = turn.state.get("missed")
        return missed if isinstance(missed, int) and missed >= 0 else 0

    def _vary(self, turn: Turn, kind: str, lines: Sequence[str]) -> str:
        """One of `lines`, never the one this conversation heard last time (kept as kind and index,
        so a line stays "the same" when the user switches language)."""
        said = turn.state.get("said")
        last = said[1] if isinstance(said, list) and len(said) == 2 and said[0] == kind else None
        choices = [i for i in range(len(lines)) if i != last] or [0]
        index = self._random.choice(choices)
        turn.state["said"] = [kind, index]
        return lines[index]
