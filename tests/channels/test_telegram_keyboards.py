"""callback_data stays within Telegram's 64 bytes, and the keyboard under a reply holds what the reply offers."""

from __future__ import annotations

import uuid

import pytest

from bot.channels import telegram_keyboards as kb
from bot.channels.telegram_texts import split_command
from bot.core.messages import Reply


def test_every_callback_fits_64_bytes_at_its_largest() -> None:
    conversation = uuid.uuid4().hex
    reply = Reply(conversation, "hi", "help", message_id=2**63 - 1, suggestions=("я" * 200,) * 8,
                  data={"story": {"story": {"candidates": [{}] * 5, "passages": [{"author": "model"}]}}})
    markups = [kb.reply_markup(reply, offer_rating=True), kb.reply_markup(reply, offer_rating=False),
               kb.language_markup(), kb.delete_markup()]
    for markup in markups:
        for row in markup.inline_keyboard:
            for button in row:
                assert len(button.callback_data.encode()) <= kb.MAX_CALLBACK_BYTES
                kb.decode(button.callback_data)
    with pytest.raises(kb.CallbackDataError):
        kb.encode(kb.SUGGEST, "x" * 70)


@pytest.mark.parametrize("data", [None, "", "zz:1", "t" * 65])
def test_foreign_callback_data_is_refused(data) -> None:
    with pytest.raises(kb.CallbackDataError):
        kb.decode(data)


def test_reply_markup_rows() -> None:
    plain = kb.reply_markup(Reply("c", "hi", "help", message_id=7, suggestions=("A", "B")), offer_rating=False)
    assert [[b.text for b in row] for row in plain.inline_keyboard] == [["A", "B"], ["👍", "👎"]]
    rating = kb.reply_markup(Reply("c", "bye", "fallback", message_id=8, suggestions=("1",)), offer_rating=True)
    assert [b.callback_data for b in rating.inline_keyboard[0]] == [f"r:c:{v}" for v in range(1, 6)]
    assert kb.reply_markup(Reply("c", "refused", "dispatcher"), offer_rating=False) is None
    chosen = kb.show_choice(rating, {kb.RATE}, "⭐ 3/5 ✓")
    assert [[b.text for b in row] for row in chosen.inline_keyboard] == [["⭐ 3/5 ✓"], ["👍", "👎"]]


def test_split_command() -> None:
    assert split_command("/help@TandemBot now") == ("help", "TandemBot", "now")
    assert split_command("/language ru") == ("language", None, "ru")
    assert split_command("hello /help") == (None, None, "hello /help")
