"""ReplyGate: lets a generated chat reply through word by word as it streams, and stops the model
when the reply is done (its sentence limit, the model speaking for the user) or went wrong (another
language, a listed unsafe word).

Like the story's PassageFilter, the gate shows whole words as they come and judges the finished
reply afterwards (`final`, through PassageFilter's sentence checks); when that differs from what was
shown, the skill rewrites the reply and channels show the final text in its place. The gate adds
what a chat reply needs and a passage does not: listed unsafe words stop it at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.story.polish import PassageFilter, cut_at_turn_marker, script_language

_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”’)\]]*(?=\s|$)")
# Words may be shown only when something follows them: a word still arriving is held.
_LAST_SPACE = re.compile(r"\s(?=\S*$)")


class ReplyGate:
    """`feed(piece)` returns the text that may be shown now (possibly ""); `stopped` says the model
    should stop; `final()` is the checked reply (whole sentences, at most `max_sentences`) or None."""

    def __init__(self, language: str, max_sentences: int, listed: Callable[[str], bool]) -> None:
        self.language = language
        self.max_sentences = max_sentences
        self._listed = listed
        self._raw = ""
        self.shown = ""
        self.stopped = False
        self.reason: str | None = None  # why it stopped early: marker, sentences, language, unsafe, failed

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._raw += piece
        text, marker = cut_at_turn_marker(self._raw)
        text = text.lstrip()
        if marker:
            self._stop("marker")
            showable = text
        else:
            cut = _LAST_SPACE.search(text)
            showable = text[: cut.start()] if cut else ""
        showable = self._limit_sentences(showable)
        if self._listed(showable):
            self._stop("unsafe")
            return ""
        if self.language in ("en", "ru"):
            detected = script_language(showable)
            if detected is None and not self.stopped:
                return ""  # too few letters to tell the language yet: hold them (a few words)
            if detected is not None and detected != self.language:
                self._stop("language")
                return ""
        if not showable.startswith(self.shown):
            return ""  # never take back what is on screen; `final()` settles the difference
        new, self.shown = showable[len(self.shown):], showable
        return new

    def fail(self) -> None:
        """The generation broke off (the model crashed or timed out): what came is not a reply."""
        self._stop("failed")

    def finish(self) -> str:
        """The generation ended: the rest that may be shown (the last word, when it was whole)."""
        if self.stopped:
            return ""
        self._raw += " "
        return self.feed("")

    def final(self) -> str | None:
        """The reply to keep: whole sentences in the right language, at most `max_sentences`."""
        if self.reason in ("unsafe", "language", "failed"):
            return None
        text, _ = cut_at_turn_marker(self._raw)
        filt = PassageFilter((), self.language)
        filt.feed(text)
        filt.finish()
        if filt.wrong_language or not filt.text:
            return None
        return self._limit_sentences(filt.text).strip() or None

    def _limit_sentences(self, text: str) -> str:
        ends = list(_SENTENCE_END.finditer(text))
        if len(ends) >= self.max_sentences:
            self._stop("sentences")
            return text[: ends[self.max_sentences - 1].end()]
        return text

    def _stop(self, reason: str) -> None:
        if not self.stopped:
            self.stopped, self.reason = True, reason
