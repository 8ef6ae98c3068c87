"""StoryContextBuilder: the prompt of a story, in a fixed order, always inside the model's context window.

Order: instructions and memory (system message), then the summary of passages that no
longer fit, the lore entries triggered by recent passages, the passages themselves
(newest kept first), the author's note, and the task. Every part has a share of the
budget it may not exceed, and passages get what is left, so the whole prompt plus the
answer always fits `context_window` tokens as the model counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.models.base import ChatMessage
from bot.storage.stories import LoreRecord, PassageRecord, StoryRecord

# Tokens a chat template adds around each message (role markers), with room to spare.
MESSAGE_OVERHEAD = 8
# Shares of the prompt budget that memory, summary, lore and the author's note may each use at most.
SHARES = {"memory": 0.25, "summary": 0.2, "lore": 0.2, "author_note": 0.1}
# Passages scanned for lore keywords: the newest few, where the story is now.
LORE_SCAN = 3
LANGUAGE_NAMES = {"en": "English", "ru": "Russian"}

CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class LoreDecision:
    """Whether a lore entry went into the prompt, and why: what the context viewer shows."""

    entry: LoreRecord
    included: bool
    reason: str
    key: str | None = None  # the key found in the recent passages


@dataclass(frozen=True)
class StoryPrompt:
    """A built prompt: the messages, the named sections in order (for tests and debugging),
    its token count (with the chat template's overhead), which passages it holds or left out,
    and what became of each lore entry."""

    messages: tuple[ChatMessage, ...]
    sections: tuple[tuple[str, str], ...]
    tokens: int
    kept: tuple[PassageRecord, ...]
    dropped: tuple[PassageRecord, ...]
    summary_used: bool
    lore: tuple[LoreDecision, ...] = ()

    @property
    def order(self) -> list[str]:
        return [name for name, _ in self.sections]


def matched_key(entry: LoreRecord, text: str) -> str | None:
    """The entry's first key that starts a word of `text` ("dragon" matches "dragons")."""
    for key in entry.keys:
        if re.search(r"(?<!\w)" + re.escape(key), text, re.IGNORECASE):
            return key
    return None


def triggered_lore(lore: Sequence[LoreRecord], recent: Sequence[str]) -> list[LoreRecord]:
    """Switched-on entries with a key in the recent text."""
    text = "\n".join(recent)
    return [entry for entry in lore if entry.enabled and matched_key(entry, text) is not None]


class StoryContextBuilder:
    """Builds prompts for one model: `count_tokens` and `context_window` come from it."""

    def __init__(self, count_tokens: CountTokens, context_window: int) -> None:
        self.count = count_tokens
        self.window = context_window

    def budget(self, max_new_tokens: int, messages: int = 2) -> int:
        """Tokens the prompt may use: the window less the answer and the template's overhead."""
        return self.window - max_new_tokens - MESSAGE_OVERHEAD * (messages + 1)

    def truncate(self, text: str, max_tokens: int, *, keep: str = "start") -> str:
        """`text` cut to at most `max_tokens`, at a word, keeping its start or its end."""
        if max_tokens <= 0 or not text:
            return ""
        if self.count(text) <= max_tokens:
            return text
        words = text.split(" ")
        lo, hi = 0, len(words)
        while lo < hi:  # the most words that still fit
            mid = (lo + hi + 1) // 2
            part = " ".join(words[:mid] if keep == "start" else words[len(words) - mid:])
            if self.count(part + " …") <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            return ""
        part = " ".join(words[:lo] if keep == "start" else words[len(words) - lo:])
        return part + " …" if keep == "start" else "… " + part

    def build(
        self,
        story: StoryRecord,
        path: Sequence[PassageRecord],
        lore: Sequence[LoreRecord],
        *,
        max_new_tokens: int,
        summary: str = "",
        summary_covers: int = 0,
        instruction: str | None = None,
        task: str | None = None,
        extra: Sequence[ChatMessage] = (),
        sentences: int = 5,
    ) -> StoryPrompt:
        """The prompt for continuing `path` (or, with `instruction`/`task`/`extra`, another request
        about the story, such as a character's answer). `summary` covers `path[:summary_covers]`."""
        language = LANGUAGE_NAMES.get(story.language, story.language)
        budget = self.budget(max_new_tokens, 2 + len(extra))
        system_head = instruction or continue_instruction(story, language, sentences)
        task = task or continue_task(story, path, lore, sentences)
        fixed = self.count(system_head) + self.count(task) + sum(self.count(m.content) for m in extra) + 16
        if fixed > budget:
            # Only a tiny window gets here; the task must survive, the instructions give way.
            system_head = self.truncate(system_head, max(budget - self.count(task) - 16, 0))
            fixed = self.count(system_head) + self.count(task) + sum(self.count(m.content) for m in extra) + 16
        room = max(budget - fixed, 0)

        memory = self.truncate(story.memory.strip(), int(room * SHARES["memory"]))
        note = self.truncate(story.author_note.strip(), int(room * SHARES["author_note"]))
        later = list(path[summary_covers:]) if summary else list(path)
        summary_text = self.truncate(summary.strip(), int(room * SHARES["summary"]), keep="end")
        recent = [p.text for p in later[-LORE_SCAN:]]
        decisions = self._decide_lore(lore, "\n".join(recent), int(room * SHARES["lore"]))
        lore_lines = [f"- {d.entry.text}" for d in decisions if d.included]

        sections: list[tuple[str, str]] = [("instruction", system_head)]
        if memory:
            sections.append(("memory", "Memory (always true in this story):\n" + memory))
        if summary_text:
            sections.append(("summary", "Summary of the story so far:\n" + summary_text))
        if lore_lines:
            sections.append(("lore", "World notes:\n" + "\n".join(lore_lines)))
        used = sum(self.count(text) for _, text in sections[1:]) + (self.count(note) + 8 if note else 0)
        kept = self._fit_passages(later, max(room - used, 0))
        dropped = tuple(path[: len(path) - len(kept)])
        if kept:
            sections.append(("passages", "Story so far:\n\n" + "\n\n".join(p.text for p in kept)))
        if note:
            sections.append(("author_note", f"[Author's note: {note}]"))
        sections.append(("task", task))

        prompt = self._render(sections, extra, kept, dropped, bool(summary_text), decisions)
        while prompt.tokens > self.window - max_new_tokens and prompt.kept:
            # Counting joined text can differ by a token or two from the sum of its parts.
            kept = kept[1:]
            sections = [s if s[0] != "passages" else ("passages", "Story so far:\n\n" + "\n\n".join(
                p.text for p in kept)) for s in sections if s[0] != "passages" or kept]
            prompt = self._render(sections, extra, kept, tuple(path[: len(path) - len(kept)]), bool(summary_text),
                                  decisions)
        return prompt

    def _decide_lore(self, lore: Sequence[LoreRecord], recent: str, max_tokens: int) -> tuple[LoreDecision, ...]:
        """Each entry in or out: switched off, not triggered by the last passages, or past the
        world notes' share of the prompt (entries are taken in their order, each one that still
        fits: a short entry after one that did not fit can go in)."""
        out, used = [], 0
        for entry in lore:
            if not entry.enabled:
                out.append(LoreDecision(entry, False, "switched off"))
                continue
            key = matched_key(entry, recent)
            if key is None:
                out.append(LoreDecision(entry, False, f"none of its keys is in the last {LORE_SCAN} passages"))
                continue
            cost = self.count(f"- {entry.text}") + 1
            if used + cost > max_tokens:
                out.append(LoreDecision(entry, False, f"\"{key}\" is in the story, but the world notes' share "
                                                      f"of the prompt ({max_tokens} tokens) is full", key))
                continue
            used += cost
            out.append(LoreDecision(entry, True, f"\"{key}\" is in the last {LORE_SCAN} passages", key))
        return tuple(out)

    def _fit_passages(self, passages: Sequence[PassageRecord], room: int) -> tuple[PassageRecord, ...]:
        """The newest passages that fit in `room`; the newest one is shortened from its start if
        it alone is too long, so the model always sees where the story stands."""
        kept: list[PassageRecord] = []
        used = self.count("Story so far:\n\n")
        for passage in reversed(passages):
            cost = self.count(passage.text) + 2
            if used + cost > room:
                if not kept:
                    text = self.truncate(passage.text, room - used - 2, keep="end")
                    if text:
                        kept.append(_with_text(passage, text))
                break
            kept.append(passage)
            used += cost
        return tuple(reversed(kept))

    def _render(self, sections: Sequence[tuple[str, str]], extra: Sequence[ChatMessage],
                kept: Sequence[PassageRecord], dropped: Sequence[PassageRecord], summary_used: bool,
                lore: tuple[LoreDecision, ...] = ()) -> StoryPrompt:
        system = "\n\n".join(text for name, text in sections if name in ("instruction", "memory"))
        user = "\n\n".join(text for name, text in sections if name not in ("instruction", "memory"))
        if extra:
            # A side conversation: the story is context, the last extra message is the request.
            user = "\n\n".join(text for name, text in sections if name not in ("instruction", "memory", "task"))
            messages = (ChatMessage("system", system), ChatMessage("user", user), *extra)
        else:
            messages = (ChatMessage("system", system), ChatMessage("user", user))
        tokens = sum(self.count(m.content) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD
        return StoryPrompt(messages, tuple(sections), tokens, tuple(kept), tuple(dropped), summary_used, lore)


def sentence_range(sentences: int) -> str:
    return f"two to {sentences} sentences" if sentences > 2 else ("two sentences" if sentences == 2 else "one sentence")


def continue_instruction(story: StoryRecord, language: str, sentences: int = 5) -> str:
    lines = [
        "You are a co-author writing a story together with a person; you take turns writing passages.",
        f"Write only the next passage: {sentence_range(sentences)} of narrative prose in {language}.",
        "Stay in the scene where the story stopped and keep every fact it states (names, numbers, colours).",
        "Do not repeat earlier passages, do not comment on the story, and do not write the person's turn.",
    ]
    for label, value in (("Title", story.title), ("Genre", story.genre), ("Style", story.style),
                         ("Premise", story.premise)):
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines)


def continue_task(story: StoryRecord, path: Sequence[PassageRecord], lore: Sequence[LoreRecord],
                  sentences: int = 5) -> str:
    """The request at the end of the prompt, where a small model attends most: where to go on
    from, and (when the story has them) that the memory and world notes are there to be used."""
    if not path:
        return f"Write the opening passage of the story ({sentence_range(sentences)})."
    task = "Write the next passage, going on right after its last sentence."
    if story.memory.strip() or any(entry.enabled for entry in lore):
        task += " Use the memory and world notes where the scene calls for them."
    return task


def _with_text(passage: PassageRecord, text: str) -> PassageRecord:
    from dataclasses import replace

    return replace(passage, text=text)
