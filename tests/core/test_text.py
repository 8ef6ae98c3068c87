"""clean_user_text: what is accepted, cleaned, or refused with a message fit for users."""

from __future__ import annotations

import pytest

from bot.core.errors import InputError
from bot.core.text import clean_user_text


@pytest.mark.parametrize("text", ["", "  ", "\x00", "\u0007\n", None, b"bytes", 3])
def test_refused_with_a_clear_message(text) -> None:
    with pytest.raises(InputError) as caught:
        clean_user_text(text, 100)
    assert str(caught.value) and "Traceback" not in str(caught.value)


def test_too_long_says_the_limit() -> None:
    with pytest.raises(InputError, match="limit is 10"):
        clean_user_text("x" * 11, 10)


def test_cleaning_keeps_meaning() -> None:
    assert clean_user_text("  hi\x00 there\n", 100) == "hi there"
    assert clean_user_text("a\ud800b", 100) == "a?b"
    assert clean_user_text("e\u0301", 100) == "\u00e9"  # NFC
    assert clean_user_text("שלום 👋\u200b", 100) == "שלום 👋\u200b"
