"""The rule annotator: regexes, keywords and /commands from the catalogue pin an intent with certainty."""

from __future__ import annotations

import re

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import IntentCatalogue


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
        for pattern, intent in self._patterns:
            if pattern.search(stripped):
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
