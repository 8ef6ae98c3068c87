"""Inline keyboards of the Telegram channel: callback_data encoding (≤ 64 bytes) and the markup under a reply."""

from __future__ import annotations

import re
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
STORY = "s"      # s:<action>:<story>:<head>:<last candidate>[:<number>], s:o:<story>   see StoryButton
LANGUAGE = "l"   # l:<en|ru>
DELETE = "x"     # x:<yes|no>                     /deletemydata confirmation
NOOP = "n"       # a button that only shows a choice already made

# Kinds whose row is replaced by the choice once clicked; SUGGEST rows simply go away.
STORY_CHOOSE, STORY_CONTINUE, STORY_RETRY, STORY_UNDO, STORY_REDO, STORY_OPEN = "c", "n", "r", "u", "d", "o"
# What each story button asks the story skill for (the names of skills/story.py BUTTON_ACTIONS).
STORY_ACTIONS = {STORY_CHOOSE: "choose", STORY_CONTINUE: "continue", STORY_RETRY: "retry", STORY_UNDO: "undo",
                 STORY_REDO: "redo", STORY_OPEN: "open"}
STORY_LABELS = {
    STORY_CONTINUE: {"en": "➡ Continue", "ru": "➡ Дальше"},
    STORY_RETRY: {"en": "↻ Retry", "ru": "↻ Заново"},
    STORY_UNDO: {"en": "↶ Undo", "ru": "↶ Отменить"},
    STORY_REDO: {"en": "↷ Redo", "ru": "↷ Вернуть"},
}
DELETE_LABELS = {"yes": {"en": "Yes, delete everything", "ru": "Да, удалить всё"},
                 "no": {"en": "No, keep it", "ru": "Нет, оставить"}}
LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
STARS = "⭐"
# Stories offered to open under a list of them.
MAX_OPEN_BUTTONS = 6


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


# --- story buttons ---------------------------------------------------------------------

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID36 = re.compile(r"^[0-9a-z]{1,13}$")  # 2**63 - 1 is 13 digits in base 36
NO_ID = "-"


def _id36(value: int | None) -> str:
    """An id in base 36, so that three of them fit in 64 bytes; None is "-"."""
    if value is None:
        return NO_ID
    if value < 0:
        raise CallbackDataError(f"a negative id: {value}")
    digits = ""
    while True:
        value, digit = divmod(value, 36)
        digits = _BASE36[digit] + digits
        if not value:
            return digits


def _int36(text: str, *, optional: bool = False) -> int | None:
    if optional and text == NO_ID:
        return None
    if not _ID36.match(text):
        raise CallbackDataError(f"not an id: {text!r}")
    value = int(text, 36)
    if value >= 2**63:
        raise CallbackDataError(f"id out of range: {text!r}")
    return value


@dataclass(frozen=True)
class StoryButton:
    """A story button: what it does to which story, and the moment of the story it was shown for
    (its head passage and the last candidate waiting), so that a button of a story that has moved
    on since does nothing. `number` is the candidate a choose button picks."""

    action: str
    story_id: int
    head_id: int | None = None
    last_candidate_id: int | None = None
    number: int | None = None

    def data(self) -> str:
        code = next(c for c, name in STORY_ACTIONS.items() if name == self.action)
        if code == STORY_OPEN:
            return encode(STORY, code, _id36(self.story_id))
        moment = (_id36(self.story_id), _id36(self.head_id), _id36(self.last_candidate_id))
        return encode(STORY, code, *moment, *(() if self.number is None else (self.number,)))

    @property
    def command(self) -> str:
        """The command the button stands for, as the user could type it (what the turn stores)."""
        if self.action == "open":
            return f"/resume {self.story_id}"
        return f"/choose {self.number}" if self.action == "choose" else f"/{self.action}"

    def metadata(self) -> dict[str, Any]:
        return {"action": self.action, "story_id": self.story_id, "head_id": self.head_id,
                "last_candidate_id": self.last_candidate_id, "number": self.number}


def story_button(callback: Callback) -> StoryButton:
    """The StoryButton of a click on a story button; CallbackDataError when it is not one Tandem made."""
    code, *rest = callback.args or ("",)
    action = STORY_ACTIONS.get(code)
    if action is None:
        raise CallbackDataError(f"unknown story action: {callback.args!r}")
    if code == STORY_OPEN:
        if len(rest) != 1:
            raise CallbackDataError(f"an open button names one story: {callback.args!r}")
        return StoryButton(action, _int36(rest[0]))
    if len(rest) != (4 if code == STORY_CHOOSE else 3):
        raise CallbackDataError(f"malformed story button: {callback.args!r}")
    number = None
    if code == STORY_CHOOSE:
        if not rest[3].isdecimal() or not 1 <= int(rest[3]) <= 99:
            raise CallbackDataError(f"not a candidate number: {callback.args!r}")
        number = int(rest[3])
    return StoryButton(action, _int36(rest[0]), _int36(rest[1], optional=True), _int36(rest[2], optional=True),
                       number)


# --- the rows under a reply ------------------------------------------------------------

def thumbs_row(message_id: int) -> list[InlineKeyboardButton]:
    return [button("👍", THUMB, message_id, 1), button("👎", THUMB, message_id, 0)]


def rating_row(conversation_id: str) -> list[InlineKeyboardButton]:
    return [button(str(v), RATE, conversation_id, v) for v in range(1, 6)]


def suggestion_rows(suggestions: Sequence[str]) -> list[list[InlineKeyboardButton]]:
    buttons = [button(text[:60], SUGGEST, i) for i, text in enumerate(suggestions[:6])]
    return [buttons[i:i + 3] for i in range(0, len(buttons), 3)]


def story_rows(story: Mapping[str, Any]) -> list[list[InlineKeyboardButton]]:
    """What can be done next under the newest passage: the candidates to choose from (then retry or
    undo), or continue, retry the model's passage, undo and redo. Labels are in the story's language;
    each button remembers the moment of the story it is shown for."""
    # The story skill sends {"story": view, "candidates": [...], ...} after a generation, else {"story": view}.
    view = story.get("story") if isinstance(story.get("story"), Mapping) else story
    story_id = view.get("id")
    if not isinstance(story_id, int) or isinstance(story_id, bool):
        return []  # not a stored story: nothing a button could act on
    language = view.get("language") if view.get("language") in ("en", "ru") else "en"
    candidates = [c for c in view.get("candidates") or () if isinstance(c, Mapping)]
    head = view.get("head_id") if isinstance(view.get("head_id"), int) else None
    last = candidates[-1].get("id") if candidates and isinstance(candidates[-1].get("id"), int) else None

    def control(code: str, number: int | None = None, label: str | None = None) -> InlineKeyboardButton:
        data = StoryButton(STORY_ACTIONS[code], story_id, head, last, number).data()
        return InlineKeyboardButton(label or STORY_LABELS[code][language], callback_data=data)

    rows: list[list[InlineKeyboardButton]] = []
    if candidates:
        pick = [control(STORY_CHOOSE, i, f"✍ {i}") for i in range(1, len(candidates) + 1)]
        rows.extend(pick[i:i + 5] for i in range(0, len(pick), 5))
        rows.append([control(STORY_RETRY), control(STORY_UNDO)])
        return rows
    passages = [p for p in view.get("passages") or () if isinstance(p, Mapping)]
    controls = [control(STORY_CONTINUE)]
    if passages and passages[-1].get("author") in ("model", "edited"):
        controls.append(control(STORY_RETRY))
    if view.get("can_undo", bool(passages)):
        controls.append(control(STORY_UNDO))
    if view.get("can_redo"):
        controls.append(control(STORY_REDO))
    rows.append(controls)
    return rows


def open_rows(stories: Sequence[Any]) -> list[list[InlineKeyboardButton]]:
    """Under a list of the user's stories: a button to open each of the newest."""
    rows = []
    for item in stories:
        if len(rows) == MAX_OPEN_BUTTONS:
            break
        story_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(story_id, int) and not isinstance(story_id, bool):
            title = " ".join(str(item.get("title") or story_id).split())
            label = f"▶ {title[:40]}{'…' if len(title) > 40 else ''}"
            rows.append([InlineKeyboardButton(label, callback_data=StoryButton("open", story_id).data())])
    return rows


def reply_markup(reply: Reply, *, offer_rating: bool) -> InlineKeyboardMarkup | None:
    """Everything clickable under a reply: story controls, a 1–5 rating, quick replies, thumbs."""
    rows: list[list[InlineKeyboardButton]] = []
    story = reply.data.get("story")
    if isinstance(story, Mapping):
        rows.extend(story_rows(story))
    stories = reply.data.get("stories")
    if isinstance(stories, Sequence) and not isinstance(stories, str):
        rows.extend(open_rows(stories))
    if offer_rating:
        rows.append(rating_row(reply.conversation_id))
    elif reply.suggestions and not rows:  # story buttons already say "1", "2", "/retry"
        rows.extend(suggestion_rows(reply.suggestions))
    if reply.message_id is not None:
        rows.append(thumbs_row(reply.message_id))
    return InlineKeyboardMarkup(rows) if rows else None


def language_markup() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button(name, LANGUAGE, code) for code, name in LANGUAGE_NAMES.items()]])


def delete_markup(language: str | None = None) -> InlineKeyboardMarkup:
    language = language if language in ("en", "ru") else "en"
    return InlineKeyboardMarkup([[button(DELETE_LABELS[answer][language], DELETE, answer) for answer in ("yes", "no")]])


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


def acts(markup: InlineKeyboardMarkup | None, kinds: set[str]) -> bool:
    """Whether the keyboard still has a button of `kinds` that does something."""
    return any(kind_of(b) in kinds for row in (markup.inline_keyboard if markup else ()) for b in row)


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
