"""PassageFilter: turns a model's raw stream into a clean passage, word by word, as it streams.

A passage must end at a sentence boundary, must not repeat the prompt, must not go on to
write the user's side of the dialogue, must be in the story's language with one script per
word, must close the quotes it opens, and must stop at its sentence limit. The filter judges
each sentence when it ends and keeps what passes (`text`, what is stored). While a sentence is
still arriving its whole words are shown as soon as nothing can make the sentence fail: the
language is known, the words so far are not the start of a repetition, no word mixes scripts.
Only an unfinished last sentence cut by the token limit is shown and then left out; `diverged`
says so, and the stored passage (the channel's final text) is what counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

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
# A run of letters, digits and inner hyphens or apostrophes: one word for the script check.
_WORD_TOKEN = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
# Latin and Cyrillic letters that look the same: a word of one script with a few of these from
# the other (a tokenizer's slip) is written in one script again.
_LOOK_ALIKE_LATIN, _LOOK_ALIKE_CYRILLIC = "aceopxyABCEHKMOPTX", "асеорхуАВСЕНКМОРТХ"
_LATIN_TO_CYRILLIC = str.maketrans(_LOOK_ALIKE_LATIN, _LOOK_ALIKE_CYRILLIC)
_CYRILLIC_TO_LATIN = str.maketrans(_LOOK_ALIKE_CYRILLIC, _LOOK_ALIKE_LATIN)

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


def sentence_count(text: str) -> int:
    """Sentences in `text`: its sentence ends, plus an unfinished last one."""
    text = text.strip()
    if not text:
        return 0
    ends = list(_SENTENCE_END.finditer(text + " "))
    return len(ends) + (0 if ends and not text[ends[-1].end():].strip() else 1)


def mixed_script_words(text: str) -> list[str]:
    """Words written partly in Latin and partly in Cyrillic letters ("мysterный")."""
    return [w for w in _WORD_TOKEN.findall(text) if _CYRILLIC.search(w) and _LATIN.search(w)]


def one_script(word: str, language: str) -> str | None:
    """`word` in one script: as it is when it already is, with look-alike letters swapped into
    the story's script when that makes it whole, else None (it cannot be mended)."""
    if not (_CYRILLIC.search(word) and _LATIN.search(word)):
        return word
    mended = word.translate(_LATIN_TO_CYRILLIC if language == "ru" else _CYRILLIC_TO_LATIN)
    return mended if not (_CYRILLIC.search(mended) and _LATIN.search(mended)) else None


def mend_scripts(text: str, language: str) -> str | None:
    """`text` with every mixed word mended (`one_script`), or None when one cannot be."""
    out, last = [], 0
    for match in _WORD_TOKEN.finditer(text):
        word = one_script(match.group(), language)
        if word is None:
            return None
        out += [text[last:match.start()], word]
        last = match.end()
    return "".join(out) + text[last:]


def open_quotes(text: str) -> str:
    """The closing marks `text` still owes, innermost first: '"' for an odd count of straight
    quotes, then ” and » for curly and angle quotes opened and not closed. Russian nests „…“
    inside «…», so where „ occurs, “ closes it rather than opening."""
    if "„" in text:
        curly = text.count("„") - text.count("“") - text.count("”")
        curly_close = "“"
    else:
        curly = text.count("“") - text.count("”")
        curly_close = "”"
    owed = '"' if text.count('"') % 2 else ""
    return owed + curly_close * max(curly, 0) + "»" * max(text.count("«") - text.count("»"), 0)


def quotes_balanced(text: str) -> bool:
    return not open_quotes(text)


class PassageFilter:
    """Feed raw pieces in, get text to show out; `finish()` ends it; `text` is the passage.

    `context` is the text the model was shown (recent passages, memory): sentences found
    in it are dropped as repetitions. `language` is the story's language; a passage in
    another one is refused (`wrong_language`) before any of it is let through.
    `max_sentences` ends the passage at that many sentences; `token_budget` (with
    `count_tokens`) ends it at the first sentence end past that many tokens, so the caller
    can give the model room beyond the budget to finish its sentence.
    """

    def __init__(self, context: Iterable[str] = (), language: str = "en", *, max_sentences: int | None = None,
                 token_budget: int | None = None, count_tokens: Callable[[str], int] | None = None) -> None:
        self._context = " \n ".join(normalise(c) for c in context if c)
        self.language = language
        self.max_sentences = max_sentences
        self.token_budget = token_budget if count_tokens is not None else None
        self._count = count_tokens
        self._raw = ""          # everything received, after cutting at a turn marker
        self._consumed = 0      # how much of _raw has been judged
        self._emitted: list[str] = []
        self._seen: set[str] = set()
        self.shown = ""         # what feed() and finish() have let through
        self.done = False       # the model left the passage, or it is long enough: stop generating
        self.wrong_language = False
        self.dropped_repeats = 0
        self.dropped_garbled = 0  # sentences with a word in two scripts that could not be mended
        self.ended_by: str | None = None  # sentences | tokens | marker, when it stopped early

    @property
    def text(self) -> str:
        return "".join(self._emitted).strip()

    @property
    def diverged(self) -> bool:
        """Something was shown that the passage does not keep (the stored text is what counts)."""
        return self.shown.strip() != self.text

    def feed(self, piece: str) -> str:
        """The text that may be shown now (whole words), possibly ""."""
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
            self._stop("marker")
        while not self.done or self._consumed < len(self._raw) and self.ended_by == "marker":
            end = _SENTENCE_END.search(self._raw, self._consumed)
            if end is None:
                break
            sentence = self._raw[self._consumed: end.end()]
            self._consumed = end.end()
            self._judge(sentence)
            if self.wrong_language:
                self.done = True
                return ""
            self._check_length()
        if self.done:
            return self._show("".join(self._emitted))
        return self._show("".join(self._emitted) + self._preview())

    def finish(self, complete: bool = True) -> str:
        """End the passage. When the generation completed, an unfinished last sentence is
        dropped (or, when it is all there is, closed with an ellipsis); when it was cut
        short by an error, the tail is kept as it is, for a passage marked incomplete.
        Quotes left open are closed at the end."""
        if self.wrong_language:
            return ""
        tail = self._raw[self._consumed:]
        self._consumed = len(self._raw)
        if tail.strip() and self.ended_by not in ("sentences", "tokens"):
            if ends_sentence(tail) or not complete:
                self._judge(tail)
            elif not self._emitted:
                self._judge(tail.rstrip(" ,;:—–-") + "…")
            # else: an unfinished sentence after whole ones: cut at the last boundary
        owed = open_quotes(self.text)
        if owed:
            self._emitted.append(owed)
        return self._show("".join(self._emitted))

    def _stop(self, reason: str) -> None:
        self.done = True
        self.ended_by = self.ended_by or reason

    def _check_length(self) -> None:
        if self.max_sentences is not None and len([s for s in self._emitted if s.strip()]) >= self.max_sentences:
            self._stop("sentences")
        elif self.token_budget is not None and self._count(self.text) >= self.token_budget:
            self._stop("tokens")

    def _show(self, showable: str) -> str:
        """The part of `showable` not shown yet; nothing when it no longer extends what is on
        screen (a shown sentence was left out after all: the stored text settles it)."""
        if not self.shown:
            showable = showable.lstrip()
        if not showable.startswith(self.shown):
            return ""
        new, self.shown = showable[len(self.shown):], showable
        return new

    def _preview(self) -> str:
        """The whole words of the sentence still arriving, when nothing can make it fail."""
        current = self._raw[self._consumed:]
        cut = current.rfind("\n")
        if cut != -1 and len(current[cut:].split()) < 2:
            current = current[:cut]  # a new line's first word may start a speaker's label
        space = max(current.rfind(" "), current.rfind("\n"))
        current = current[:space] if space > 0 else ""
        if not current.strip():
            return ""
        if not self._emitted:
            if len(current.split()) < 3:
                return ""  # a label ("Next passage:") is held back until it can be told apart
            current = _LEADING_LABEL.sub("", current.lstrip())
        if self.language in ("en", "ru"):
            detected = script_language(self.text + current)
            if detected != self.language:
                return ""
        mended = mend_scripts(current, self.language)
        if mended is None:
            return ""
        key = normalise(mended)
        if key and (self._context and key in self._context or any(seen.startswith(key) for seen in self._seen)):
            return ""  # it may turn out to repeat the prompt: wait for the sentence to end
        return mended

    def _judge(self, sentence: str) -> None:
        if not self._emitted:
            sentence = _LEADING_LABEL.sub("", sentence.lstrip())
            if not sentence.strip():
                return
        if self.language in ("en", "ru") and not self.wrong_language:
            sample = self.text + sentence
            detected = script_language(sample)
            if detected is not None and detected != self.language:
                self.wrong_language = True
                return
        mended = mend_scripts(sentence, self.language)
        if mended is None:
            self.dropped_garbled += 1
            return
        sentence = mended
        key = normalise(sentence)
        if len(key.split()) >= REPEAT_MIN_WORDS and (key in self._seen or (self._context and key in self._context)):
            self.dropped_repeats += 1
            return
        self._seen.add(key)
        if not self._emitted:
            sentence = sentence.lstrip()
        self._emitted.append(sentence)
