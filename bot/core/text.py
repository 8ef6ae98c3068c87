"""Cleaning of user text before a turn: what Tandem accepts, and the clear answer when it does not."""

from __future__ import annotations

import re
import unicodedata

from bot.core.errors import InputError

# Control characters other than tab and newline (C0, DEL and C1) carry no meaning in a chat message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"\r\n?")
# Categories that show nothing on their own: controls, format characters (zero-width, bidi
# marks, BOM) and separators. A message made only of these is empty to the reader.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

# The refusals, per language: InputError.in_language picks the user's.
NOT_TEXT = {"en": "I can only read text messages.", "ru": "Я умею читать только текстовые сообщения."}
EMPTY = {"en": "Your message was empty. Write me something, or type 'help'.",
         "ru": "Сообщение пустое. Напиши мне что-нибудь или набери «помощь»."}
TOO_LONG = {
    "en": "That message is too long for me ({length} characters; the limit is {limit}). "
          "Could you send it in shorter parts?",
    "ru": "Это сообщение для меня слишком длинное (символов: {length}, а можно не больше {limit}). "
          "Пришлёшь его частями покороче?",
}


def clean_text(text: str) -> str:
    """`text` made storable and showable everywhere: lone surrogates replaced by U+FFFD (a pair
    split in two code points is joined again), CR and CRLF turned into LF, other control
    characters dropped, NFC-normalised. It does not trim, and it never raises."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _CONTROL.sub("", _LINE_BREAK.sub("\n", text))
    return unicodedata.normalize("NFC", text)


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: empty, or only spaces, controls and zero-width or bidi marks."""
    return not any(unicodedata.category(char) not in _INVISIBLE for char in text)


def clean_comment(text: str | None) -> str | None:
    """An optional comment (on a rating) as stored: cleaned like a message, None when it shows nothing."""
    if text is None:
        return None
    text = clean_text(text).strip()
    return None if is_blank(text) else text


def clean_user_text(text: object, max_chars: int) -> str:
    """Return storable text, or raise InputError with a message fit for the user.

    Lone surrogates (from broken UTF-16 or hostile clients) are replaced, control
    characters dropped, and the result NFC-normalised, so the database and every
    channel can store and show it; text with nothing visible in it counts as empty.
    """
    if not isinstance(text, str):
        raise InputError(texts=NOT_TEXT)
    text = clean_text(text).strip()
    if is_blank(text):
        raise InputError(texts=EMPTY)
    if len(text) > max_chars:
        raise InputError(texts={language: line.format(length=len(text), limit=max_chars)
                                for language, line in TOO_LONG.items()})
    return text
