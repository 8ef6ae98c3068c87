"""Cleaning of user text before a turn: what Tandem accepts, and the clear answer when it does not."""

from __future__ import annotations

import re
import unicodedata

from bot.core.errors import InputError

# Control characters other than tab and newline carry no meaning in a chat message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_user_text(text: object, max_chars: int) -> str:
    """Return storable text, or raise InputError with a message fit for the user.

    Lone surrogates (from broken UTF-16 or hostile clients) are replaced, control
    characters dropped, and the result NFC-normalised, so the database and every
    channel can store and show it.
    """
    if not isinstance(text, str):
        raise InputError("I can only read text messages.")
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub("", text)
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InputError("Your message was empty. Write me something, or type 'help'.")
    if len(text) > max_chars:
        raise InputError(
            f"That message is too long for me ({len(text)} characters; the limit is {max_chars}). "
            "Could you send it in shorter parts?"
        )
    return text
