"""ProfileSkill: what the user told about themselves, from the conversation's slots: "what's my name?",
"what do I like?", an introduction ("my name is Olga") and "forget my name"."""

from __future__ import annotations

import re
from typing import Any

from bot.core.skill import Skill, Turn
from bot.nlu.user_facts import find_likes

# The slots the dispatcher fills from the user_facts annotator before any skill runs.
NAME_SLOT, LIKES_SLOT = "user_name", "user_likes"

_ASKS_NAME = re.compile(r"\bname\b|\bwho\s+(?:am\s+)?i\b|зовут|\bимя\b|\bкто\s+я\b", re.IGNORECASE)
_ASKS_LIKES = re.compile(r"\blike|\blove|\benjoy|favou?rite|люблю|обожаю|нравит|любим", re.IGNORECASE)
_ASKS_ALL = re.compile(r"\beverything\b|\ball\b|about\s+me|about\s+myself|вс[её]|обо\s+мне|про\s+меня|о\s+себе",
                       re.IGNORECASE)
_RENAMES = re.compile(r"\bcall\s+me\b|\bgo\s+by\b|зови|называй|звать|называть", re.IGNORECASE)
# What follows "forget (that)" / «забудь, что»: the like to drop ("forget that I like cats").
_FORGET_PREFIX = re.compile(r"^\s*(?:please\s+|can\s+you\s+|could\s+you\s+)*(?:forget|delete|erase|remove)\s+"
                            r"(?:that\s+)?|^\s*(?:пожалуйста,?\s+)?(?:забудь|удали|сотри)\s*,?\s*"
                            r"(?:(?:про\s+то|о\s+том),?\s+)?(?:что\s+)?", re.IGNORECASE)

TEXTS: dict[str, dict[str, str]] = {
    "name": {"en": "You're {name}.", "ru": "Тебя зовут {name}."},
    "no_name": {"en": "You haven't told me your name yet. What should I call you?",
                "ru": "Я пока не знаю, как тебя зовут. Как мне к тебе обращаться?"},
    "likes": {"en": "You told me you like {likes}.", "ru": "Помню, что ты любишь {likes}."},
    "no_likes": {"en": "You haven't told me what you like yet. What do you enjoy?",
                 "ru": "Я пока не знаю, что ты любишь. Расскажешь?"},
    "nothing": {"en": "I don't know anything about you yet. Tell me your name or what you like, and I'll "
                      "remember it for the rest of our conversation.",
                "ru": "Я пока ничего о тебе не знаю. Скажи, как тебя зовут или что ты любишь, и я запомню это "
                      "до конца нашего разговора."},
    "forget_hint": {"en": " (Say \"forget everything about me\" whenever you like.)",
                    "ru": " (Скажи «забудь всё обо мне», если захочешь.)"},
    "welcome": {"en": "Nice to meet you, {name}! I'm Tandem. Shall we write a story together, or would you "
                      "like a joke?",
                "ru": "Приятно познакомиться, {name}! Я Тандем. Напишем вместе историю или рассказать анекдот?"},
    "renamed": {"en": "Okay, {name} it is!", "ru": "Хорошо, {name}, договорились!"},
    "no_name_heard": {"en": "Nice to meet you! I didn't catch your name, though. What should I call you?",
                      "ru": "Приятно познакомиться! Только я не понял, как тебя зовут. Как мне к тебе обращаться?"},
    "forgot_name": {"en": "Okay, I've forgotten your name.", "ru": "Хорошо, я забыл, как тебя зовут."},
    "forgot_likes": {"en": "Okay, I've forgotten what you like.", "ru": "Хорошо, я забыл, что ты любишь."},
    "forgot_like": {"en": "Okay, I've forgotten that you like {likes}.",
                    "ru": "Хорошо, я забыл, что ты любишь {likes}."},
    "forgot_all": {"en": "Done: I've forgotten everything you told me about yourself.",
                   "ru": "Готово: я забыл всё, что знал о тебе."},
    "knew_nothing": {"en": "I didn't have that in my memory anyway.", "ru": "Я этого и так не запоминал."},
}
SUGGESTIONS = {"en": ("Let's write a story", "Tell me a joke"), "ru": ("Давай напишем историю", "Расскажи анекдот")}
# First person -> second, to say back "my cat" as "your cat".
_PERSON = {
    "en": {"my": "your", "mine": "yours", "me": "you", "myself": "yourself", "i": "you", "i'm": "you're"},
    "ru": {"мой": "твой", "моя": "твоя", "моё": "твоё", "мое": "твое", "мои": "твои", "моего": "твоего",
           "мою": "твою", "моих": "твоих", "моим": "твоим", "моей": "твоей", "моему": "твоему", "меня": "тебя",
           "мне": "тебе", "мной": "тобой"},
}


class ProfileSkill(Skill):
    name = "profile"
    selectable = True  # its answer changes nothing outside the turn
    intents = ("user_profile", "introduce", "forget_me")
    description = "Says what the user told about themselves, greets an introduction, forgets on request."

    async def respond(self, turn: Turn) -> str:
        intent = turn.intent if turn.intent in self.intents else _intent_of(turn)
        if intent == "introduce":
            return self.introduce(turn)
        if intent == "forget_me":
            return self.forget(turn)
        return self.recall(turn)

    def recall(self, turn: Turn) -> str:
        name, likes = _name(turn.slots), _likes(turn.slots)
        asks_name, asks_likes = bool(_ASKS_NAME.search(turn.text)), bool(_ASKS_LIKES.search(turn.text))
        if asks_name == asks_likes or _ASKS_ALL.search(turn.text):  # "what do you know about me?"
            if not name and not likes:
                return _say(turn, "nothing")
            parts = [_say(turn, "name", name=name)] if name else []
            if likes:
                parts.append(_say(turn, "likes", likes=_join(likes, turn.language)))
            return " ".join(parts) + _say(turn, "forget_hint")
        if asks_name:
            return _say(turn, "name", name=name) if name else _say(turn, "no_name")
        return _say(turn, "likes", likes=_join(likes, turn.language)) if likes else _say(turn, "no_likes")

    def introduce(self, turn: Turn) -> str:
        facts = turn.annotations.values.get("user_facts")
        heard = facts.get("name") if isinstance(facts, dict) else None
        name = _name(turn.slots)
        if not heard or not name:
            return _say(turn, "no_name_heard")
        if _RENAMES.search(turn.text):
            return _say(turn, "renamed", name=name)
        turn.suggest(*turn.say(SUGGESTIONS))
        return _say(turn, "welcome", name=name)

    def forget(self, turn: Turn) -> str:
        asks_name, asks_likes = bool(_ASKS_NAME.search(turn.text)), bool(_ASKS_LIKES.search(turn.text))
        wants_all = bool(_ASKS_ALL.search(turn.text)) or asks_name == asks_likes
        name, likes = _name(turn.slots), _likes(turn.slots)
        if wants_all:
            turn.slots.pop(NAME_SLOT, None)
            turn.slots.pop(LIKES_SLOT, None)
            return _say(turn, "forgot_all" if name or likes else "knew_nothing")
        if asks_name:
            turn.slots.pop(NAME_SLOT, None)
            return _say(turn, "forgot_name" if name else "knew_nothing")
        named = find_likes(_FORGET_PREFIX.sub("", turn.text, count=1))
        if named:  # "forget that I like cats": only that one
            dropped = [x for x in likes if x.casefold() in {n.casefold() for n in named}]
            kept = [x for x in likes if x not in dropped]
            if kept:
                turn.slots[LIKES_SLOT] = kept
            else:
                turn.slots.pop(LIKES_SLOT, None)
            return _say(turn, "forgot_like", likes=_join(dropped, turn.language)) if dropped \
                else _say(turn, "knew_nothing")
        turn.slots.pop(LIKES_SLOT, None)
        return _say(turn, "forgot_likes" if likes else "knew_nothing")


def _intent_of(turn: Turn) -> str:
    """Which of the skill's intents a turn routed here some other way is (an aside answered after a
    story asked "add that to the story, or leave it?"), read from the message itself."""
    if _FORGET_PREFIX.match(turn.text) and re.match(r"\s*\S", _FORGET_PREFIX.sub("", turn.text, count=1)):
        return "forget_me"
    facts = turn.annotations.values.get("user_facts")
    if isinstance(facts, dict) and facts.get("name"):
        return "introduce"
    return "user_profile"


def _say(turn: Turn, key: str, **fields: Any) -> str:
    return turn.say(TEXTS[key]).format(**fields)


def _name(slots: dict[str, Any]) -> str | None:
    name = slots.get(NAME_SLOT)
    return name.strip() if isinstance(name, str) and name.strip() else None


def _likes(slots: dict[str, Any]) -> list[str]:
    return [x for x in slots.get(LIKES_SLOT) or () if isinstance(x, str) and x.strip()]


def _join(likes: list[str], language: str) -> str:
    """"cats, rainy days and your dog" / «кошек, дождливые дни и твою собаку»."""
    language = language if language in _PERSON else "en"
    said = [_second_person(x, language) for x in likes]
    if len(said) == 1:
        return said[0]
    return ", ".join(said[:-1]) + (" и " if language == "ru" else " and ") + said[-1]


def _second_person(text: str, language: str) -> str:
    swap = {**_PERSON["en"], **_PERSON["ru"]} if language == "ru" else _PERSON["en"]
    return re.sub(r"[\w'’]+", lambda m: _swap_word(m.group(), swap), text)


def _swap_word(word: str, swap: dict[str, str]) -> str:
    other = swap.get(word.casefold())
    if other is None:
        return word
    return other[:1].upper() + other[1:] if word[:1].isupper() and word.casefold() != "i" else other
