"""Telegram end to end: streamed replies as drafts (private) or paced edits (groups), typing, long replies split."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.channels.telegram_delivery import split_text, utf16_len
from bot.core.skill import Skill, Turn
from bot.storage.schema import Message
from tests.channels.telegram_harness import api, running_bot  # noqa: F401 - fixtures

ANN, GROUP = 501, -100300


class SlowWriterSkill(Skill):
    """Stands in for the fallback skill: streams `pieces`, sleeping `delay` before each."""

    name = "fallback"

    def __init__(self, pieces: list[str], delay: float) -> None:
        super().__init__()
        self.pieces, self.delay = pieces, delay

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        for piece in self.pieces:
            await asyncio.sleep(self.delay)
            yield piece


def gaps(calls) -> list[float]:
    return [b.at - a.at for a, b in zip(calls, calls[1:])]


async def test_private_chat_streams_drafts_then_sends_the_message(api, tmp_path) -> None:
    writer = SlowWriterSkill([f"word{i} " for i in range(24)], 0.1)
    async with running_bot(api, tmp_path / "data", skills={"fallback": writer}, edit_interval_s=1.0) as bot:
        await api.send_text(ANN, "xqzv kvvt slowly")
        final = (await api.wait_messages(ANN, 1))[0]
        assert final["text"] == "".join(writer.pieces).strip()
        drafts = api.calls_of("sendMessageDraft", ANN)
        assert len(drafts) >= 2
        texts = [d.params["text"] for d in drafts]
        assert len(set(texts)) == len(texts)                      # only when the text changed
        assert all(t and final["text"].startswith(t.strip()) for t in texts)
        assert len({d.params["draft_id"] for d in drafts}) == 1
        assert min(gaps(drafts)) >= 0.95                          # at most one a second
        assert not api.calls_of("editMessageText", ANN)
        assert len(api.calls_of("sendChatAction", ANN)) >= 2       # renewed while generating
        assert api.calls_of("sendChatAction", ANN)[0].params["action"] == "typing"
        stored = await bot.rows(Message, Message.author == "bot")
        assert stored[0].text == final["text"]


async def test_group_chat_edits_a_placeholder_at_most_once_a_second(api, tmp_path) -> None:
    writer = SlowWriterSkill([f"part{i} " for i in range(24)], 0.1)
    async with running_bot(api, tmp_path / "data", skills={"fallback": writer}, edit_interval_s=1.0):
        await api.send_text(GROUP, "/ramble please", user_id=601, chat_type="group")
        await api.wait_for(lambda: any(c.params.get("reply_markup") for c in api.calls_of("editMessageText")))
        messages = api.bot_messages(GROUP)
        assert len(messages) == 1                                  # one placeholder, edited in place
        assert messages[0]["text"] == "".join(writer.pieces).strip()
        edits = api.calls_of("editMessageText", GROUP)
        assert len(edits) >= 2
        assert min(gaps(edits)) >= 0.95
        texts = [e.params["text"] for e in edits]
        assert all(a != b for a, b in zip(texts, texts[1:]))
        assert not api.calls_of("sendMessageDraft")


@pytest.mark.parametrize("chat_id,chat_type", [(ANN, "private"), (GROUP, "group")])
async def test_long_replies_are_split_cleanly_under_the_limit(api, tmp_path, chat_id, chat_type) -> None:
    paragraph = "The lantern 🏮 glowed. " * 90  # ~2000 characters, ~2100 UTF-16 units
    pieces = [paragraph.strip() + "\n\n" for _ in range(5)]
    writer = SlowWriterSkill(pieces, 0.2)
    async with running_bot(api, tmp_path / "data", skills={"fallback": writer}, edit_interval_s=0.3):
        await api.send_text(chat_id, "/ramble long" if chat_type == "group" else "xqzv kvvt long",
                            user_id=chat_id if chat_type == "private" else 601, chat_type=chat_type)
        await api.wait_for(lambda: any((m.get("reply_markup") for m in api.bot_messages(chat_id))))
        texts = api.texts(chat_id)
        assert len(texts) >= 3
        assert all(utf16_len(t) <= 3900 for t in texts)
        assert "\n\n".join(texts) == "".join(pieces).strip()      # cut only at paragraph breaks
        # The keyboard sits under the last part.
        assert api.bot_messages(chat_id)[-1].get("reply_markup")
        assert not any(m.get("reply_markup") for m in api.bot_messages(chat_id)[:-1])


def test_split_text_prefers_paragraphs_then_sentences_and_counts_utf16() -> None:
    text = "a" * 50 + "\n\n" + "b" * 50
    assert split_text(text, 80) == ["a" * 50, "b" * 50]
    sentences = "One two three. " * 10
    parts = split_text(sentences, 40)
    assert all(p.endswith(".") and utf16_len(p) <= 40 for p in parts)
    emoji = "😀" * 30
    parts = split_text(emoji, 21)
    assert all(utf16_len(p) <= 21 for p in parts) and "".join(parts) == emoji
    assert split_text("x" * 100, 30) == ["x" * 30, "x" * 30, "x" * 30, "x" * 10]
    assert split_text("   ") == []


async def test_small_talk_streams_as_drafts_in_a_private_chat(api, tmp_path) -> None:
    from bot.models.fake import FakeLanguageModel

    model = FakeLanguageModel("I'm doing well today, thank you so much for asking me. How is your day going "
                              "so far, and what are you up to?", delay_s=0.12)
    async with running_bot(api, tmp_path / "data", language_model=model, edit_interval_s=0.5,
                           stream_after_s=0.1):
        await api.send_text(ANN, "how are you?")
        final = (await api.wait_messages(ANN, 1))[0]
        drafts = api.calls_of("sendMessageDraft", ANN)
        assert len(drafts) >= 2 and final["text"].startswith("I'm doing well today")
        assert all(final["text"].startswith(d.params["text"].strip()) for d in drafts)
