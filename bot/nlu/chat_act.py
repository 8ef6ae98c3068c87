"""ChatActAnnotator: tells ordinary conversation ("I just made pancakes", "do you like rain?",
"у меня был длинный день") from requests Tandem cannot serve ("book me a flight", "what is the
capital of Peru?"), for the messages no rule or classifier was sure of.

The intent classifier knows chit-chat only by its examples, and people talk about anything: most of
what they say about themselves, their day or the bot's tastes is far from every example, so it
scored low and fell to the fallback. The shape of such a message is easier to see than its topic:
it speaks in the first person, or asks the bot about itself, and it is not a task or a fact lookup.
"""

from __future__ import annotations

import re

from bot.core.annotations import Annotations, IntentGuess

_FIRST_PERSON = re.compile(
    r"(?<![\w'])(i|i'm|im|i've|i'd|i'll|me|my|mine|myself|we|we're|our|us"
    r"|я|мне|меня|мной|мой|моя|моё|мое|мои|моих|мы|нам|нас|наш|наша|наше|наши)(?![\w'])",
    re.IGNORECASE)
# Russian drops the pronoun: "обожаю шахматы", "очень волнуюсь", "вчера ходил в кино"; and where the
# speaker is ("it's raining here", "за окном снег") is about them too.
_SPEAKER_IMPLIED = re.compile(
    r"^\W*(?:(?:вчера|сегодня|утром|вечером|днём|днем|ночью|недавно|только что|наконец|очень|так|прям|прямо|"
    r"уже|опять|снова|тоже|просто)\s+){0,2}[а-яё]{2,}(?:ю|юсь|л|ла|лся|лась)(?![а-яё])"
    r"|(?<![\w'])(here|за окном|у нас)(?![\w'])",
    re.IGNORECASE)
_TO_THE_BOT = re.compile(
    r"(?<![\w'])(you|your|yours|yourself|u|ur|ты|тебе|тебя|тобой|твой|твоя|твоё|твое|твои)(?![\w'])",
    re.IGNORECASE)
# Asking the bot to do a task: a task verb opening a clause, or after "can you", "I need to", "please".
_TASK = re.compile(
    r"(?:^|[,.;:!?]\s*|\band\s+|\bso\s+|\bи\s+)\W*(please\s+|pls\s+)?((can|could|would|will)\s+(you|u)\s+(please\s+)?|i\s*(need|want|would like|'d like)"
    r"\s+(you\s+)?to\s+|help\s+me\s+|пожалуйста\s+|(ты\s+)?(можешь|мог бы|могла бы)\s+|мне\s+(нужно|надо)\s+"
    r"|помоги\s+)?"
    r"(book|order|buy|purchase|reserve|schedule|remind|set an? (alarm|timer|reminder)|call|text|email|send|transfer"
    r"|help|write (me )?an? (\w+ )?(program|script|code|function|essay|letter|email|report|cv|resume)"
    r"|помоги|помочь|напиши (мне )?(программу|скрипт|код|функцию|сочинение|письмо|эссе|резюме)"
    r"|pay|convert|calculate|compute|translate|define|spell|search|google|look up|find|navigate|play|turn (on|off)"
    r"|закажи|заказать|забронируй|забронировать|купи|купить|напомни|поставь (будильник|таймер)|позвони|отправь"
    r"|переведи|перевести|посчитай|вычисли|сконвертируй|найди|найти|включи|выключи)(?!\w)",
    re.IGNORECASE)
# Looking a fact up: a lookup question that is not about the speaker or the bot.
_LOOKUP = re.compile(
    r"(?<!\w)(what is the|what's the|what are the|who is the|who was|who invented|when is|when was|when did"
    r"|where is|where are|where can i|how many|how much|how far|how long does|how do i|how to|capital of"
    r"|population of|weather|forecast|exchange rate|stock price|recipe|definition of|meaning of"
    r"|что такое|кто такой|кто такая|кто изобрёл|кто изобрел|когда был|когда была|где находится|где находятся"
    r"|сколько стоит|сколько будет|сколько времени ехать|как доехать|как сделать|столица|население|погода|прогноз"
    r"|курс валют|рецепт)(?!\w)",
    re.IGNORECASE)
_WORDS = re.compile(r"[^\W\d_]{2,}")
# Beyond this many words a message is more than a remark; the classifier must be sure of it.
MAX_WORDS = 40


def kind_of_message(text: str) -> str | None:
    """"task" (do something for me), "lookup" (a fact question), "chat" (about the speaker or the
    bot), "remark" (anything else in words), or None (a lone word, noise, or too long to tell)."""
    words = _WORDS.findall(text)
    if len(words) < 2 or len(words) > MAX_WORDS:
        return None
    if _TASK.search(text):
        return "task"
    personal = _FIRST_PERSON.search(text) or _TO_THE_BOT.search(text) or _SPEAKER_IMPLIED.search(text)
    # "What's the capital of Peru?" is a lookup; "what's the best part of your day?" is not.
    if _LOOKUP.search(text) and _FIRST_PERSON.search(text) is None and not _about_the_bot(text):
        return "lookup"
    return "chat" if personal else "remark"


def _about_the_bot(text: str) -> bool:
    return bool(re.search(r"(?<![\w'])(your|yours|yourself|ur|тебе|тебя|твой|твоя|твоё|твое|твои|у тебя)(?![\w'])",
                          text, re.IGNORECASE))


class ChatActAnnotator:
    """When no earlier annotator set an intent: `values["chat_act"]` is the kind of message
    (`kind_of_message`); a "chat" one gets `intent` (the catalogue's chit-chat intent), a task or a
    lookup gets `unsupported` when the catalogue has such an intent (an honest "I can't do that")."""

    name = "chat_act"

    def __init__(self, intent: str = "chitchat", confidence: float = 0.55, unsupported: str | None = None) -> None:
        self.intent, self.confidence, self.unsupported = intent, confidence, unsupported

    async def annotate(self, text: str, annotations: Annotations) -> None:
        guessed = annotations.intent
        # A classifier's "unsupported" is second-guessed: "it's been raining all day here" is a remark
        # about the speaker's day, not a weather lookup, whatever words it shares with one.
        if guessed is not None and not (guessed.name == self.unsupported and guessed.source != "rules"):
            return
        kind = kind_of_message(text)
        annotations.values[self.name] = kind  # the dispatcher's follow-up rule reads it
        name = self.intent if kind == "chat" else self.unsupported if kind in ("task", "lookup") else None
        if name is None or guessed is not None and name == guessed.name:
            return
        guess = IntentGuess(name, self.confidence, self.name)
        if guessed is not None:  # the guess second-guessed leaves the ranking with its intent
            annotations.ranking = [g for g in annotations.ranking if g.name != guessed.name]
        annotations.intent = guess
        annotations.ranking.insert(0, guess)
