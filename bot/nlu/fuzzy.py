"""FuzzyExampleAnnotator: typo-tolerant matching of a whole message against the catalogue's examples
("wat can u do" is "what can you do?", "давай напешем исторею" is "давай напишем историю"), for the
messages no rule or classifier was sure of."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.catalogue import IntentCatalogue

# Chat spellings that are not typos, spelled out before comparing.
_TEXTING = {
    "u": "you", "ur": "your", "r": "are", "wat": "what", "wot": "what", "wut": "what", "pls": "please",
    "plz": "please", "thx": "thanks", "ty": "thank you", "lets": "let's", "im": "i'm", "dont": "don't",
    "cant": "can't", "whats": "what's", "hows": "how's", "ya": "you", "gonna": "going to", "wanna": "want to",
    "щас": "сейчас", "чо": "что", "че": "что", "чё": "что", "шо": "что", "пжлст": "пожалуйста", "спс": "спасибо",
}
_WORD = re.compile(r"\w+(?:'\w+)?")


def normalise(text: str) -> str:
    words = _WORD.findall(text.casefold().replace("ё", "е").replace("’", "'"))
    return " ".join(_TEXTING.get(w, w) for w in words)


class FuzzyExampleAnnotator:
    """Sets the intent of the most similar example when the similarity (difflib's ratio of the
    normalised texts) reaches `min_ratio` and no other intent's example comes as close. Runs when no
    earlier annotator set an intent, or a classifier did with a confidence below `overrule_below`: a
    near-copy of an example outweighs an unsure guess (multilingual-e5 reads "давай напешем исторею"
    as reset at 0.65). It never overrides a rule or a sure classifier."""

    name = "fuzzy"

    def __init__(self, catalogue: IntentCatalogue, *, min_ratio: float = 0.84, margin: float = 0.04,
                 min_chars: int = 4, overrule_below: float = 0.0) -> None:
        self.min_ratio, self.margin, self.min_chars = min_ratio, margin, min_chars
        self.overrule_below = overrule_below
        self._examples: list[tuple[str, str]] = []  # (normalised example, intent)
        seen: set[tuple[str, str]] = set()
        for intent in catalogue:
            for example in intent.texts("examples"):
                key = (normalise(example), intent.name)
                if key[0] and key not in seen:
                    seen.add(key)
                    self._examples.append(key)

    def best(self, text: str) -> tuple[str, float] | None:
        """(intent, ratio) of the closest example, or None when none is close enough or two intents tie."""
        query = normalise(text)
        if len(query) < self.min_chars:
            return None
        matcher = SequenceMatcher(autojunk=False)
        matcher.set_seq2(query)
        by_intent: dict[str, float] = {}
        for example, intent in self._examples:
            matcher.set_seq1(example)
            # The cheap upper bounds first: most examples are nowhere near.
            if matcher.real_quick_ratio() < self.min_ratio or matcher.quick_ratio() < self.min_ratio:
                continue
            ratio = matcher.ratio()
            if ratio >= self.min_ratio and ratio > by_intent.get(intent, 0.0):
                by_intent[intent] = ratio
        if not by_intent:
            return None
        ranked = sorted(by_intent.items(), key=lambda item: -item[1])
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < self.margin:
            return None  # close to two intents: a typo of which?
        return ranked[0]

    async def annotate(self, text: str, annotations: Annotations) -> None:
        guessed = annotations.intent
        if guessed is not None and (guessed.source == "rules" or guessed.confidence >= self.overrule_below):
            return
        found = self.best(text)
        if found is None:
            return
        intent, ratio = found
        if guessed is not None and guessed.name == intent:
            return
        # A near-exact match is as sure as a classifier's good guess; the threshold's edge stays unsure.
        guess = IntentGuess(intent, round(min(0.95, 0.5 + (ratio - self.min_ratio) * 3), 4), self.name)
        annotations.intent = guess
        annotations.ranking.insert(0, guess)
