"""Inline keyboards of the Telegram channel: callback_data encoding (≤ 64 bytes) and the markup under a reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.core.messages import Reply

MAX_CALLBACK_BYTES = 64  # Telegram's limit on callback_data

# The first field of callback_data says what a button does.
THUMB = "t"      # t:<message_id>:<1|0>          thumbs up / down on a stored bot message
RATE = "r"       # r:<conversation_id>:<1..5>    a conversation rating
SUGGEST = "q"    # q:<index>                      a quick reply; its text is the button's label
STORY = "s"      # s:<c|r|u>[:<number>]           choose candidate / retry / undo
LANGUAGE = "l"   # l:<en|ru>
DELETE = "x"     # x:<yes|no>                     /deletemydata confirmation
NOOP = "n"       # a button that only shows a choice already made

# Kinds whose row is replaced by the choice once clicked; SUGGEST rows simply go away.
STORY_CHOOSE, STORY_RETRY, STORY_UNDO = "c", "r", "u"
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
STARS = "⭐"


class CallbackDataError(ValueError):
    """callback_data that Tandem did not make (or that is too long to send)."""


@dataclass(frozen=True)
class Callback:
    kind: str
    args: tuple[str, ...]


def encode(kind: str, *args: object) -> str:
    data = ":".join([kind, *(str(a) for a in args)])
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise CallbackDataError(f"callback_data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode(data: str | None) -> Callback:
    # Lone surrogates (a forged update) cannot be encoded: not Tandem's either.
    if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_CALLBACK_BYTES or not data.isprintable():
        raise CallbackDataError(f"not Tandem's callback_data: {data!r}")
    kind, *args = data.split(":")
    if kind not in {THUMB, RATE, SUGGEST, STORY, LANGUAGE, DELETE, NOOP}:
        raise CallbackDataError(f"unknown callback kind: {data!r}")
    return Callback(kind, tuple(args))


def button(label: str, kind: str, *args: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=encode(kind, *args))


# --- the rows under a reply ------------------------------------------------------------

def thumbs_row(message_id: int) -> list[InlineKeyboardButton]:
    return [button("👍", THUMB, message_id, 1), button("👎", THUMB, message_id, 0)]


def rating_row(conversation_id: str) -> list[InlineKeyboardButton]:
    return [button(str(v), RATE, conversation_id, v) for v in range(1, 6)]


def suggestion_rows(suggestions: Sequence[str]) -> list[list[InlineKeyboardButton]]:
    buttons = [button(text[:60], SUGGEST, i) for i, text in enumerate(suggestions[:6])]
    return [buttons[i:i + 3] for i in range(0, len(buttons), 3)]


def story_rows(story: Mapping[str, Any]) -> list[list[InlineKeyboardButton]]:
    """Candidate buttons, then retry/undo under the latest model passage."""
    rows: list[list[InlineKeyboardButton]] = []
    # The story skill sends {"story": view, "candidates": [...], ...} after a generation, else {"story": view}.
    view = story.get("story") if isinstance(story.get("story"), Mapping) else story
    candidates = view.get("candidates") or []
    if candidates:
        pick = [button(f"✍ {i}", STORY, STORY_CHOOSE, i) for i in range(1, len(candidates) + 1)]
        rows.extend(pick[i:i + 5] for i in range(0, len(pick), 5))
    passages = view.get("passages") or []
    last_is_model = bool(passages) and passages[-1].get("author") in ("model", "edited")
    if candidates or last_is_model:
        rows.append([button("↻ Retry", STORY, STORY_RETRY), button("↶ Undo", STORY, STORY_UNDO)])
    return rows


def reply_markup(reply: Reply, *, offer_rating: bool) -> InlineKeyboardMarkup | None:
    """Everything clickable under a reply: story controls, a 1–5 rating, quick replies, thumbs."""
    rows: list[list[InlineKeyboardButton]] = []
    story = reply.data.get("story")
    if isinstance(story, Mapping):
        rows.extend(story_rows(story))
    if offer_rating:
        rows.append(rating_row(reply.conversation_id))
    elif reply.suggestions and not rows:  # story buttons already say "1", "2", "/retry"
        rows.extend(suggestion_rows(reply.suggestions))
    if reply.message_id is not None:
        rows.append(thumbs_row(reply.message_id))
    return InlineKeyboardMarkup(rows) if rows else None


def language_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button(name, LANGUAGE, code) for code, name in LANGUAGE_NAMES.items()]])


def delete_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button("Yes, delete everything", DELETE, "yes"), button("No, keep it", DELETE, "no")]])


# --- after a click -----------------------------------------------------------------------

def kind_of(button_: InlineKeyboardButton) -> str | None:
    data = button_.callback_data
    return data.split(":", 1)[0] if isinstance(data, str) else None


def show_choice(markup: InlineKeyboardMarkup | None, kinds: set[str], label: str) -> InlineKeyboardMarkup | None:
    """The same keyboard with the rows of `kinds` replaced by one button showing the choice."""
    rows: list[list[InlineKeyboardButton]] = []
    replaced = False
    for row in (markup.inline_keyboard if markup else ()):
        if any(kind_of(b) in kinds for b in row):
            if not replaced:
                rows.append([button(label, NOOP)])
                replaced = True
            continue
        rows.append(list(row))
    return InlineKeyboardMarkup(rows) if rows else None


def without(markup: InlineKeyboardMarkup | None, kinds: set[str]) -> InlineKeyboardMarkup | None:
    """The same keyboard without the rows holding buttons of `kinds`."""
    rows = [list(row) for row in (markup.inline_keyboard if markup else ()) if not any(kind_of(b) in kinds for b in row)]
    return InlineKeyboardMarkup(rows) if rows else None


def label_of(markup: InlineKeyboardMarkup | None, data: str) -> str | None:
    """The label of the button that carries `data` (a quick reply's text lives there)."""
    for row in (markup.inline_keyboard if markup else ()):
        for b in row:
            if b.callback_data == data:
                return b.text
    return None
