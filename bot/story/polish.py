"""PassageFilter: turns a model's raw stream into a clean passage, sentence by sentence, as it streams.

A passage must end at a sentence boundary, must not repeat the prompt, must not go on to
write the user's side of the dialogue, and must be in the story's language. The filter
holds text back until a sentence is complete, checks each sentence, and only then lets it
through, so what the user sees streaming is exactly what is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A sentence ends with . ! ? or … and any closing quotes or brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”’)\]]*(?=\s)")
_SENTENCE_END_AT_EOF = re.compile(r"[.!?…]+[\"'»”’)\]]*\s*$")
# Where the model starts speaking for the user, or leaves the story for chat.
_TURN_MARKER = re.compile(
    r"(^|\n)\s*(\*\*)?(user|you|human|me|assistant|ai|model|co-?author|пользователь|вы|я|ассистент)(\*\*)?\s*:"
    r"|<\|[a-z_]+\|>|\n\s*(your turn|now it'?s your turn|твоя очередь|ваша очередь)\b",
    re.IGNORECASE,
)
# Labels a chat model likes to put in front of the passage.
_LEADING_LABEL = re.compile(
    r"^\s*(\*\*)?(next passage|passage|continuation|story|assistant|model|продолжение|отрывок)(\*\*)?\s*[:\-–—]\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)

# Letters needed before the language of a passage is judged.
LANGUAGE_SAMPLE = 12
# Sentences shorter than this (in words) are never called repetitions: "He nodded." recurs naturally.
REPEAT_MIN_WORDS = 5


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def script_language(text: str) -> str | None:
    """"ru" or "en" by the letters used, None when there are too few letters to tell."""
    cyrillic, latin = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    if cyrillic + latin < LANGUAGE_SAMPLE:
        return None
    return "ru" if cyrillic > latin else "en"


def cut_at_turn_marker(text: str) -> tuple[str, bool]:
    """The text before the model starts speaking for the user (or leaves the reply), and whether it did."""
    marker = _TURN_MARKER.search(text)
    if marker is None:
        return text, False
    if not text[: marker.start()].strip():
        # A marker before any text is the model prefixing its own role: what follows is the reply.
        rest, found = cut_at_turn_marker(text[marker.end():])
        return rest, found
    return text[: marker.start()], True


def ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END_AT_EOF.search(text))


class PassageFilter:
    """Feed raw pieces in, get checked text out; `finish()` ends it.

    `context` is the text the model was shown (recent passages, memory): sentences found
    in it are dropped as repetitions. `language` is the story's language; a passage in
    another one is refused (`wrong_language`) before any of it is let through.
    """

    def __init__(self, context: Iterable[str] = (), language: str = "en") -> None:
        self._context = " \n ".join(normalise(c) for c in context if c)
        self.language = language
        self._raw = ""          # everything received, after cutting at a turn marker
        self._consumed = 0      # how much of _raw has been judged
        self._emitted: list[str] = []
        self._seen: set[str] = set()
        self.done = False       # the model left the passage: stop generating
        self.wrong_language = False
        self.dropped_repeats = 0

    @property
    def text(self) -> str:
        return "".join(self._emitted).strip()

    def feed(self, piece: str) -> str:
        """The text that may be shown now (whole, checked sentences), possibly ""."""
        if self.done:
            return ""
        self._raw += piece
        marker = _TURN_MARKER.search(self._raw, self._consumed)
        if marker is not None:
            if not self._emitted and not self._raw[: marker.start()].strip():
                # A marker before any text is the model prefixing its own role: skip it.
                self._raw = self._raw[marker.end():]
                self._consumed = 0
                return self.feed("")
            self._raw = self._raw[: marker.start()]
            self.done = True
        out = []
        while True:
            end = _SENTENCE_END.search(self._raw, self._consumed)
            if end is None:
                break
            sentence = self._raw[self._consumed: end.end()]
            self._consumed = end.end()
            out.append(self._judge(sentence))
            if self.wrong_language:
                self.done = True
                return ""
        return "".join(out)

    def finish(self, complete: bool = True) -> str:
        """End the passage. When the generation completed, an unfinished last sentence is
        dropped (or, when it is all there is, closed with an ellipsis); when it was cut
        short by an error, the tail is kept as it is, for a passage marked incomplete."""
        if self.wrong_language:
            return ""
        tail = self._raw[self._consumed:]
        self._consumed = len(self._raw)
        if not tail.strip():
            return ""
        if ends_sentence(tail) or not complete:
            return self._judge(tail)
        if self._emitted:
            return ""  # an unfinished sentence after whole ones: cut at the last boundary
        closed = self._judge(tail.rstrip(" ,;:—–-") + "…")
        return closed

    def _judge(self, sentence: str) -> str:
        if not self._emitted:
            sentence = _LEADING_LABEL.sub("", sentence.lstrip())
            if not sentence.strip():
                return ""
        if self.language in ("en", "ru") and not self.wrong_language:
            sample = self.text + sentence
            detected = script_language(sample)
            if detected is not None and detected != self.language:
                self.wrong_language = True
                return ""
        key = normalise(sentence)
        if len(key.split()) >= REPEAT_MIN_WORDS and (key in self._seen or (self._context and key in self._context)):
            self.dropped_repeats += 1
            return ""
        self._seen.add(key)
        if not self._emitted:
            sentence = sentence.lstrip()
        self._emitted.append(sentence)
        return sentence
