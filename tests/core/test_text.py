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
    assert clean_user_text("a\ud800b", 100) == "a\ufffdb"  # U+FFFD, never a "?" the user did not type
    assert clean_user_text("e\u0301", 100) == "\u00e9"  # NFC
    assert clean_user_text("שלום 👋\u200b", 100) == "שלום 👋\u200b"


def test_line_breaks_and_c1_controls_are_normalised() -> None:
    assert clean_user_text("one\r\ntwo\rthree", 100) == "one\ntwo\nthree"
    assert clean_user_text("a\x85b\x9bc", 100) == "abc"
    assert clean_user_text("smile \ud83d\ude00", 100) == "smile \U0001f600"  # a split pair is joined


@pytest.mark.parametrize("text", ["\u200b\u200d", "\ufeff", "\u202e\u2069", "\x85"])
def test_text_that_shows_nothing_is_empty(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        clean_user_text(text, 100)
