"""Asides: inside a skill that takes free text (a story), tell a message meant for the bot from one
meant for the skill, and read the user's answer to "Add that to the story, or leave it?"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.annotations import IntentGuess

# Intents that say nothing about being an aside: a story's "yes"/"no" to its own questions, the story itself.
NEUTRAL_INTENTS = frozenset({"affirm", "deny", "story", "cancel", "reset"})
# An aside is a short remark; a passage of this many words is a passage, whatever it mentions.
MAX_ASIDE_WORDS = 20
# A classifier's guess must be this sure before a message is called an aside (a rule is sure).
MIN_CONFIDENCE = 0.6
# Up to this many words a confident guess is enough; longer ones must also address the bot.
SHORT_WORDS = 6

# Annotators that name an intent by the shape of a message, not its meaning (bot/nlu/chat_act.py).
SHAPE_SOURCES = frozenset({"chat_act"})
_SECOND_PERSON = re.compile(
    r"(?<!\w)(you|your|yours|yourself|u|ты|тебя|тебе|тобой|твой|твоя|твоё|твое|твои|твоих|вы|вас|вам|ваш\w*)(?!\w)",
    re.IGNORECASE)
# The user speaking of themselves ("I'm bored.", "мне скучно."): with no such word and no second person,
# a finished sentence reads as narration ("Лиса нашла фонарь в снегу.").
_FIRST_PERSON = re.compile(
    r"(?<!\w)(i|i'm|im|i've|i'd|i'll|me|my|mine|myself|we|us|our|ours|я|меня|мне|мной|мой|моя|моё|мое|мои|"
    r"моих|мы|нас|нам|нами|наш|наша|наше|наши|нашего|нашей|нашему|нашим|нашими|наших|нашу)(?!\w)", re.IGNORECASE)
# A finished declarative sentence: ends with a full stop or an ellipsis (not "?" or "!").
_DECLARATIVE_END = re.compile(r"(?:\.|…)[\s\"'»”)]*$")
# Narration of fewer words than this is as likely a remark ("Nice one.").
MIN_NARRATION_WORDS = 3
# Dialogue belongs to the story: quotation marks, or a line opening with a dash.
_DIALOGUE = re.compile(r"[\"“”«»„]|^\s*[—–-]\s", re.MULTILINE)
_WORDS = re.compile(r"\w+(?:['’-]\w+)*")

ADD_ANSWERS = frozenset({
    "add", "add it", "add that", "add to the story", "add it to the story", "yes", "yes add it", "yes please",
    "sure", "ok add it", "put it in", "да", "добавь", "добавить", "добавь в историю", "добавить в историю",
    "да добавь", "в историю",
})
LEAVE_ANSWERS = frozenset({
    "leave it", "leave", "leave it out", "no", "no thanks", "don't", "dont", "not in the story", "skip it",
    "нет", "не добавлять", "не добавляй", "не надо", "оставь", "не в историю", "нет не надо",
})


@dataclass(frozen=True)
class Aside:
    """A message held back by the check, answered on the user's next message."""

    skill: str
    text: str
    intent: str
    confidence: float
    source: str
    # What the message said about the user (the user_facts annotator), kept only if it is left out.
    facts: dict | None = None

    def to_json(self) -> dict:
        return {"skill": self.skill, "text": self.text, "intent": self.intent, "confidence": self.confidence,
                "source": self.source, "facts": self.facts}

    @classmethod
    def from_json(cls, data: object) -> Aside | None:
        if not isinstance(data, dict):
            return None
        try:
            facts = data.get("facts")
            return cls(str(data["skill"]), str(data["text"]), str(data["intent"]), float(data["confidence"]),
                       str(data["source"]), facts if isinstance(facts, dict) else None)
        except (KeyError, TypeError, ValueError):
            return None  # an old or damaged record: forget it rather than fail the turn

    def guess(self) -> IntentGuess:
        return IntentGuess(self.intent, self.confidence, self.source)


def aside_intent(text: str, guess: IntentGuess | None, threshold: float) -> str | None:
    """The intent of a message that is clearly meant for the bot rather than the story, else None.

    Clearly: a rule named it ("how are you?", "tell me a joke"), or the classifier is sure and the
    message is short or talks to the bot ("do you like cats?"). Dialogue ("How are you?" she asked)
    and long messages are passages whatever they mention.
    """
    if guess is None or guess.name in NEUTRAL_INTENTS:
        return None
    if _DIALOGUE.search(text):
        return None
    words = len(_WORDS.findall(text))
    if words == 0 or words > MAX_ASIDE_WORDS:
        return None
    if guess.source == "rules":
        return guess.name
    addressed = text.rstrip().endswith("?") or _SECOND_PERSON.search(text)
    if guess.source in SHAPE_SOURCES:
        # Judged by its shape (the first person): a story's "I opened the door." has it too.
        return guess.name if addressed else None
    if guess.confidence < max(threshold, MIN_CONFIDENCE):
        return None
    if addressed:
        return guess.name
    if words <= SHORT_WORDS and not _reads_as_narration(text, words):
        return guess.name
    return None


def _reads_as_narration(text: str, words: int) -> bool:
    """A finished sentence about neither the user nor the bot: the story's, however sure a classifier is
    that it is small talk (an encoder reads "The fox found a lantern in the snow." close to chit-chat)."""
    return (words >= MIN_NARRATION_WORDS and bool(_DECLARATIVE_END.search(text.strip()))
            and not _FIRST_PERSON.search(text))


def answer_to_check(text: str) -> str | None:
    """"add", "leave" or None (the user wrote something else: the check is dropped, that message counts)."""
    key = _key(text)
    if key in _ADD:
        return "add"
    if key in _LEAVE:
        return "leave"
    return None


def _key(text: str) -> str:
    return " ".join(_WORDS.findall(text.casefold().replace("ё", "е")))


_ADD = frozenset(_key(a) for a in ADD_ANSWERS)
_LEAVE = frozenset(_key(a) for a in LEAVE_ANSWERS)
