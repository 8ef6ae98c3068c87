"""Telegram end to end: 429s, 5xx, dropped connections and slow answers lose no message and no rating;
webhook mode with and without the right secret; a conversation that survives a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from bot.channels.telegram import RATE_LIMITER_LOGGER
from bot.core.skill import Skill, Turn
from bot.storage.schema import Conversation, Feedback, Message
from tests.channels.fake_bot_api import BOT_ID, FakeBotApi
from tests.channels.telegram_harness import SECRET, api, bot, running_bot  # noqa: F401 - fixtures

ANN = 501
GROUP = -100400
WEBHOOK = "https://tandem.example/telegram/webhook"


class StreamingSkill(Skill):
    """Stands in for the fallback skill: streams `pieces` slowly, so the reply is shown while it grows."""

    name = "fallback"

    def __init__(self, pieces: list[str], delay_s: float) -> None:
        super().__init__()
        self.pieces, self.delay_s = pieces, delay_s

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        for piece in self.pieces:
            await asyncio.sleep(self.delay_s)
            yield piece


def faults_left(api: FakeBotApi, method: str) -> int:
    return sum(f.times for f in api.faults if f.method == method)


async def test_a_429_is_waited_out_and_the_message_arrives_once(bot) -> None:
    api = bot.api
    api.fail("sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1)
    await api.send_text(ANN, "/help")
    messages = await api.wait_messages(ANN, 1)
    attempts = api.calls_of("sendMessage", ANN)
    assert len(attempts) == 2 and attempts[1].at - attempts[0].at >= 1.0
    assert len(messages) == 1


@pytest.mark.parametrize("status,retry_after", [(429, 1), (502, None)])
async def test_a_persistent_fault_costs_max_retries_plus_one_calls_and_two_log_lines(
        api, tmp_path, caplog, status, retry_after) -> None:
    """One retry policy: AIORateLimiter only paces, ApiCaller retries. With both retrying a 429 that
    never ends cost (max_retries + 1) ** 2 calls (9 here, 36 with the default max_retries=5)."""
    async with running_bot(api, tmp_path / "data", max_retries=2) as bot:
        api.fail("sendMessage", status=status, description="Too Many Requests: retry after 1"
                 if retry_after else "Bad Gateway", retry_after=retry_after, times=100)
        with caplog.at_level(logging.INFO):
            await api.send_text(ANN, "/help")
            await logged(caplog, "telegram reply not delivered")
        attempts = api.calls_of("sendMessage", ANN)
        assert len(attempts) == 3
        if retry_after:  # each try waited as long as Telegram asked
            assert all(b.at - a.at >= retry_after for a, b in zip(attempts, attempts[1:], strict=False))
        lines = [r.getMessage() for r in caplog.records
                 if r.levelno >= logging.WARNING and "method=sendMessage" in r.getMessage()]
        assert len(lines) == 2 and "retrying" in lines[0] and "gave up method=sendMessage attempts=3" in lines[1]
        assert not [r for r in caplog.records if r.name == RATE_LIMITER_LOGGER]  # no traceback per 429
        assert faults_left(api, "sendMessage") == 97


async def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 30.0) -> None:
    """Wait until a log line containing `text` is written."""
    deadline = time.monotonic() + timeout
    while not any(text in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, f"never logged: {text!r}"
        await asyncio.sleep(0.05)


async def test_server_errors_and_dropped_connections_are_retried(bot) -> None:
    api = bot.api
    api.fail("sendMessage", status=500, times=2)
    api.drop("sendMessage")
    await api.send_text(ANN, "/help")
    messages = await api.wait_messages(ANN, 1)
    assert len(messages) == 1 and "what I can do" in messages[0]["text"]
    assert len(api.calls_of("sendMessage", ANN)) == 3  # two 500s recorded, the dropped one never answered


async def test_a_slow_api_is_waited_for_or_timed_out_and_retried(bot) -> None:
    api = bot.api
    api.slow("sendMessage", 0.5)           # slow but within the request timeout: no retry
    await api.send_text(ANN, "/help")
    await api.wait_messages(ANN, 1)
    assert len(api.calls_of("sendMessage", ANN)) == 1
    api.slow("sendChatAction", 3.0)        # beyond the 2 s request timeout: retried
    await api.send_text(ANN, "/help")
    await api.wait_messages(ANN, 2)
    assert len(api.bot_messages(ANN)) == 2


async def test_a_rating_survives_faults_on_every_call_around_it(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "bye")
    await api.wait_messages(ANN, 1)
    api.fail("answerCallbackQuery", status=429, description="Too Many Requests: retry after 1", retry_after=1)
    api.fail("editMessageReplyMarkup", status=502, description="Bad Gateway")
    api.drop("sendMessage")
    await api.click_button(ANN, "3")
    await api.wait_messages(ANN, 2)
    await api.wait_for(lambda: "⭐ 3/5 ✓" in api.buttons(api.bot_messages(ANN)[0]))
    assert len(api.calls_of("answerCallbackQuery")) == 2
    ratings = await bot.rows(Feedback, Feedback.kind == "rating")
    assert [r.value for r in ratings] == [3]


async def test_message_is_not_modified_is_not_an_error(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    message = (await api.wait_messages(ANN, 1))[0]
    delivery = bot.channel.delivery
    assert await delivery.edit_markup(ANN, message["message_id"], None) is not None  # the keyboard goes
    assert await delivery.edit_markup(ANN, message["message_id"], None) is None      # "not modified": no error
    assert await delivery.edit_text(ANN, message["message_id"], message["text"]) is None
    refusals = [c for c in api.calls if c.method.startswith("edit")]
    assert len(refusals) == 3  # each was one call: "not modified" is not retried


async def test_webhook_mode_accepts_only_the_right_secret(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", mode="webhook", webhook_url=WEBHOOK) as bot:
        assert api.webhook["url"] == WEBHOOK and api.webhook["secret_token"] == SECRET
        assert not api.calls_of("getUpdates")
        update = {"update_id": 1, "message": api._user_message(ANN, ANN, text="/help",
                                                              entities=[{"type": "bot_command", "offset": 0, "length": 5}])}
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
                        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}):
            response = await bot.client.post("/telegram/webhook", json=update, headers=headers)
            assert response.status == 403
        assert await bot.count(Message) == 0
        response = await bot.client.post("/telegram/webhook", json=update,
                                          headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status == 200
        reply = (await api.wait_messages(ANN, 1))[0]
        assert reply["from"]["id"] == BOT_ID
        assert await bot.count(Message) == 2


async def test_a_conversation_survives_a_restart(api, tmp_path) -> None:
    data = tmp_path / "data"
    async with running_bot(api, data):
        await api.send_text(ANN, "/rate")
        await api.wait_messages(ANN, 1)
    # A new process: nothing in memory, the click on the old message still works.
    async with running_bot(api, data) as bot:
        await api.click_button(ANN, "4")
        await api.wait_messages(ANN, 2)
        await api.send_text(ANN, "Nice chat")
        await api.wait_messages(ANN, 3)
        conversations = await bot.rows(Conversation)
        assert len(conversations) == 1
        feedback = await bot.rows(Feedback, Feedback.kind != "thumb")
        assert [(f.kind, f.value, f.comment) for f in feedback] == [("rating", 4, None), ("comment", None, "Nice chat")]
        texts = [m.text for m in await bot.rows(Message, Message.author == "user")]
        assert texts == ["/rate", "4", "Nice chat"]


@pytest.mark.parametrize("chat_id,chat_type,method", [(ANN, "private", "sendMessageDraft"),
                                                      (GROUP, "group", "editMessageText")])
async def test_a_429_on_a_streamed_preview_is_waited_out_and_the_reply_is_whole(
        api, tmp_path, chat_id, chat_type, method) -> None:
    writer = StreamingSkill([f"part{i} " for i in range(16)], 0.1)
    async with running_bot(api, tmp_path / "data", skills={"fallback": writer}, edit_interval_s=0.3) as bot:
        api.fail(method, status=429, description="Too Many Requests: retry after 1", retry_after=1)
        await api.send_text(chat_id, "/ramble please", user_id=601, chat_type=chat_type)
        final_text = "".join(writer.pieces).strip()
        await api.wait_for(lambda: final_text in api.texts(chat_id), timeout=20)
        assert faults_left(api, method) == 0                     # the flood limit was hit mid-stream
        assert len(api.calls_of(method, chat_id)) >= 2            # and the preview went on after it
        assert api.texts(chat_id) == [final_text]                 # one message, whole, nothing doubled
        stored = await bot.eventually(lambda: bot.rows(Message, Message.author == "bot"), lambda rows: rows)
        assert [m.text for m in stored] == [final_text]


async def test_the_poller_survives_5xx_429_and_dropped_connections_on_get_updates(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    await api.wait_messages(ANN, 1)
    api.fail("getUpdates", status=502, description="Bad Gateway")
    api.drop("getUpdates")
    api.fail("getUpdates", status=429, description="Too Many Requests: retry after 1", retry_after=1)
    api.drop("getUpdates")
    await api.send_text(ANN, "/help")  # arrives before, between or after the faults
    # Each fault strikes a later poll; once all four have, the poller must still be receiving.
    await api.wait_for(lambda: faults_left(api, "getUpdates") == 0, timeout=30)
    await api.send_text(ANN, "bye")
    messages = await api.wait_messages(ANN, 3, timeout=20)
    assert len(messages) == 3 and "5" in api.buttons(messages[2])  # every update, once each ("bye": rate us)
    users = [m.text for m in await bot.rows(Message, Message.author == "user")]
    assert users == ["/help", "/help", "bye"]
