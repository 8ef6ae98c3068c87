"""JokeSkill: a joke from skills/data/jokes.<language>.yaml, never the same one twice in a conversation
until all were told; "another one" / "ещё" right after a joke gets the next one."""

from __future__ import annotations

from typing import ClassVar

from bot.core.skill import Turn
from skills.repertoire import DATA_DIR, RepertoireSkill

ANOTHER_INTENT = "another"
FUN_FACT_SKILL = "fun_fact"

# "Another one" after a fun fact: the facts told live in the fun_fact skill's state, so this skill
# asks rather than tell a fact that may repeat (the quick reply under a fact says "Another fact").
WHICH_ONE = {
    "en": "Another fun fact, or a joke this time?",
    "ru": "Ещё один факт или теперь анекдот?",
}
WHICH_ONE_SUGGESTIONS = {"en": ("Another fact", "Tell me a joke"), "ru": ("Ещё факт", "Расскажи анекдот")}
# "Another one" when nothing was just told: there is nothing to continue.
ONE_MORE_WHAT = {
    "en": "One more what? I can tell you a joke or a fun fact.",
    "ru": "Ещё что? Могу рассказать анекдот или интересный факт.",
}
ONE_MORE_WHAT_SUGGESTIONS = {"en": ("Tell me a joke", "Tell me a fun fact"),
                             "ru": ("Расскажи анекдот", "Расскажи интересный факт")}


class JokeSkill(RepertoireSkill):
    name = "joke"
    # `another` is the bare "another one" / "ещё" (pinned by rules in intents/content.yaml): it means
    # "one more of what you just told me", so it comes here and is answered by what the last reply was.
    intents = ("joke", ANOTHER_INTENT)
    description = "Tells a joke, a different one each time."
    default_files: ClassVar = {"en": DATA_DIR / "jokes.en.yaml", "ru": DATA_DIR / "jokes.ru.yaml"}
    round_over: ClassVar = {
        "en": "That's every joke I know! Let's start again from the top.",
        "ru": "Это все анекдоты, которые я знаю! Начнём по второму кругу.",
    }
    more: ClassVar = {"en": "Another one", "ru": "Ещё"}

    async def respond(self, turn: Turn) -> str:
        if turn.intent == ANOTHER_INTENT:
            last = last_reply_skill(turn)
            if last == FUN_FACT_SKILL:
                turn.suggest(*turn.say(WHICH_ONE_SUGGESTIONS))
                return turn.say(WHICH_ONE)
            if last != self.name:
                turn.suggest(*turn.say(ONE_MORE_WHAT_SUGGESTIONS))
                return turn.say(ONE_MORE_WHAT)
        return self.tell(turn)


def last_reply_skill(turn: Turn) -> str | None:
    """The skill that wrote the bot's last reply in this conversation, if any."""
    for item in reversed(turn.history):
        if item.author != "user":
            return item.skill
    return None
