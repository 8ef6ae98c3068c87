"""The rule annotator: regexes, keywords and /commands from the catalogue pin an intent with certainty."""

from __future__ import annotations

import re

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import IntentCatalogue


# Words that open or close a message without changing what it asks ("by the way, what time is it?",
# "привет! как дела?", "как меня зовут, помнишь?"): a rule written for the bare request matches it
# with them too (after the whole message was tried: "hi there" alone is still a greeting).
_OPENERS = re.compile(
    r"^\s*(?:by the way|btw|so|and|well|oh|hey|ok|okay|um+|hmm+|also|anyway|actually|and also|кстати|вообще-то|на самом деле|а|и|ну|слушай|скажи|так"
    r"|ладно|ой|эй|hi|hello|hey|hiya|good (?:morning|afternoon|evening)|привет\w*|здравствуй\w*|хай"
    r"|добр\w+ (?:утро|день|вечер))\b[\s,.!:;—–-]*",
    re.IGNORECASE)
_TAGS = re.compile(
    r"[\s,]+(?:remember|do you remember|you know|right|ok|okay|please|pls|помнишь|знаешь|да|правда|пожалуйста"
    r"|а)\s*([?!.]*)\s*$",
    re.IGNORECASE)


def without_discourse_markers(text: str) -> str:
    """`text` without the openers and closing tags around its request (at most three of each)."""
    for _ in range(3):
        shorter = _OPENERS.sub("", text, count=1)
        if shorter == text or not shorter.strip():
            break
        text = shorter
    for _ in range(3):
        shorter = _TAGS.sub(lambda m: m.group(1) or "", text, count=1)
        if shorter == text or not shorter.strip():
            break
        text = shorter
    return text.strip()


class RuleAnnotator:
    """First stage of the intent cascade: a rule match is certain (confidence 1.0)."""

    name = "rules"

    def __init__(self, catalogue: IntentCatalogue) -> None:
        self._commands: dict[str, str] = {}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for intent in catalogue:
            for rule in intent.rules:
                if rule.command:
                    self._commands[rule.command] = intent.name
                elif rule.regex:
                    self._patterns.append((re.compile(rule.regex, re.IGNORECASE), intent.name))
                else:
                    words = "|".join(re.escape(k) for k in rule.keywords)
                    pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)
                    self._patterns.append((pattern, intent.name))

    def match(self, text: str) -> str | None:
        stripped = text.strip()
        if stripped.startswith("/"):
            # "/start@TandemBot payload" -> "/start"
            command = stripped.split(maxsplit=1)[0].split("@", 1)[0].lower()
            if command in self._commands:
                return self._commands[command]
        for candidate in dict.fromkeys((stripped, without_discourse_markers(stripped))):
            for pattern, intent in self._patterns:
                if pattern.search(candidate):
                    return intent
        return None

    async def annotate(self, text: str, annotations: Annotations) -> None:
        if annotations.intent is not None:
            return
        intent = self.match(text)
        if intent is not None:
            guess = IntentGuess(intent, 1.0, self.name)
            annotations.intent = guess
            annotations.ranking.insert(0, guess)
