"""Telegram webhook mode: a POST is answered once its update is taken (its message stored, or its
handling done), so one chat's messages keep their order across two workers on one database."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.core.skill import Skill, Turn
from bot.storage.schema import Message
from tests.channels.telegram_harness import RunningBot, api, running_bot  # noqa: F401 - fixtures

ANN = 701
WEBHOOK = "https://tandem.example/telegram/webhook"
NOT_TAKEN = "answered before the update was taken"


class EchoSkill(Skill):
    """Stands in for the fallback skill: answers a message with it and the user message before it,
    so each reply shows which turn it followed."""

    name = "fallback"

    async def respond(self, turn: Turn) -> str:
        earlier = [item.text for item in turn.history if item.author == "user"]
        return f"{turn.text} after {earlier[-1] if earlier else 'nothing'}"


class HeldSkill(Skill):
    """Stands in for the fallback skill: answers only once `release` is set."""

    name = "fallback"

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def respond(self, turn: Turn) -> str:
        self.started.set()
        await self.release.wait()
        return "done at last"


def slow_to_store(bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's turns reach the database late (a busier process, a farther database): were a
    POST answered before its message is stored, the other worker's next message would overtake it."""
    repo = bot.tandem.dispatcher.repo
    open_turn = repo.open_turn

    async def late_open_turn(*args, **kwargs):
        await asyncio.sleep(0.05)
        return await open_turn(*args, **kwargs)

    monkeypatch.setattr(repo, "open_turn", late_open_turn)


async def test_two_workers_take_one_chats_messages_in_the_order_telegram_sent_them(
        api, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    texts = [f"line {i}" for i in range(1, 9)]
    hooked = {"mode": "webhook", "webhook_url": WEBHOOK, "database_url": database_url}
    async with running_bot(api, data, skills={"fallback": EchoSkill()}, **hooked) as first, \
            running_bot(api, data, skills={"fallback": EchoSkill()}, **hooked) as second:
        assert api.webhook["max_connections"] == 1
        slow_to_store(first, monkeypatch)
        # Telegram with max_connections=1: the next update is posted once the previous was answered,
        # here to the two workers in turn, as a balancer may.
        for number, text in enumerate(texts):
            worker = (first, second)[number % 2]
            assert await worker.post_update(api.text_update(ANN, text)) == 200

        expected = [f"{text} after {earlier}" for text, earlier in zip(texts, ["nothing", *texts])]
        await api.wait_messages(ANN, len(texts))
        bots = await first.eventually(lambda: first.rows(Message, Message.author == "bot"),
                                      lambda rows: len(rows) >= len(texts))
        users = await first.rows(Message, Message.author == "user")
        assert [m.text for m in users] == texts  # stored in update order (ids rise)
        for user, reply in zip(users, expected):
            answers = [m.text for m in bots if m.parent_id == user.id]
            assert answers == [reply]  # answered once, after the turn before it
        assert len(bots) == len(texts)
        assert sorted(api.texts(ANN)) == sorted(expected)  # each reply reached Telegram, once


async def test_the_webhook_answers_once_the_message_is_stored_not_once_it_is_answered(
        api, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    held = HeldSkill()
    async with running_bot(api, tmp_path / "data", skills={"fallback": held},
                           mode="webhook", webhook_url=WEBHOOK) as bot:
        assert await bot.post_update(api.text_update(ANN, "xqzv kvvt")) == 200
        users = await bot.rows(Message, Message.author == "user")
        assert [m.text for m in users] == ["xqzv kvvt"]  # the ticket is taken
        assert await bot.count(Message, Message.author == "bot") == 0 and api.texts(ANN) == []
        await held.started.wait()  # the turn goes on after the answer
        held.release.set()
        assert (await api.wait_messages(ANN, 1))[0]["text"] == "done at last"
    assert NOT_TAKEN not in caplog.text


async def test_an_update_without_a_turn_is_answered_once_it_is_handled(
        api, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_bot(api, tmp_path / "data", mode="webhook", webhook_url=WEBHOOK) as bot:
        message = api._user_message(ANN, ANN, sticker={
            "file_id": "s1", "file_unique_id": "s1u", "type": "regular", "width": 512, "height": 512,
            "is_animated": False, "is_video": False})
        assert await bot.post_update({"update_id": 41, "message": message}) == 200
        assert len(api.bot_messages(ANN)) == 1  # the "text only" answer was sent before the POST's answer
        assert await bot.count(Message) == 0
        assert not bot.channel._taking  # nothing left waiting
    assert NOT_TAKEN not in caplog.text


async def test_a_webhook_post_is_answered_after_the_wait_even_when_the_update_is_not_taken(
        api, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_bot(api, tmp_path / "data", mode="webhook", webhook_url=WEBHOOK,
                           webhook_take_timeout_s=0.1) as bot:
        api.slow("sendMessage", 1.0)  # the "text only" answer hangs well past the wait
        message = api._user_message(ANN, ANN, location={"latitude": 52.5, "longitude": 13.4})
        with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"):
            assert await bot.post_update({"update_id": 42, "message": message}) == 200
        assert caplog.text.count(NOT_TAKEN) == 1
        await api.wait_messages(ANN, 1)  # and the update is handled all the same
