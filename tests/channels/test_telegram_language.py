"""Telegram and the user's language: a client set to Russian is answered in Russian from /start on
(commands, short replies, refusals, the command menu), until a real sentence or /language says otherwise."""

from __future__ import annotations

import re

import pytest

from bot.channels.telegram_texts import COMMANDS
from tests.channels.fake_bot_api import FakeBotApi
from tests.channels.telegram_harness import api, bot, running_bot  # noqa: F401 - fixtures

OLGA = 702


def russian(text: str) -> bool:
    return len(re.findall(r"[а-яё]", text, re.IGNORECASE)) > len(re.findall(r"[a-z]", text, re.IGNORECASE))


async def send_from(api: FakeBotApi, chat_id: int, text: str, language_code: str = "ru") -> None:
    """A private text message from a user whose Telegram client is set to `language_code`."""
    update = api.text_update(chat_id, text)
    update["message"]["from"]["language_code"] = language_code
    await api.send_update(update)


async def test_a_russian_client_gets_start_help_and_short_replies_in_russian(bot) -> None:
    api = bot.api
    await send_from(api, OLGA, "/start")
    welcome = (await api.wait_messages(OLGA, 1))[0]
    assert "Привет" in welcome["text"] and russian(welcome["text"])
    assert "Что ты умеешь?" in api.buttons(welcome)
    await send_from(api, OLGA, "/help")
    help_ = (await api.wait_messages(OLGA, 2))[1]
    assert russian(help_["text"]), help_["text"]
    for short in ("ok", "/rate"):
        await send_from(api, OLGA, short)
    replies = await api.wait_messages(OLGA, 4)
    assert all(russian(m["text"]) for m in replies[2:4]), [m["text"] for m in replies]


async def test_a_full_english_sentence_from_a_russian_client_is_answered_in_english(bot) -> None:
    api = bot.api
    await send_from(api, OLGA, "/start")
    await api.wait_messages(OLGA, 1)
    await send_from(api, OLGA, "Could you tell me what you can do?")
    answer = (await api.wait_messages(OLGA, 2))[1]
    assert not russian(answer["text"]), answer["text"]


async def test_an_english_client_still_gets_english(bot) -> None:
    api = bot.api
    await send_from(api, OLGA, "/start", language_code="en")
    welcome = (await api.wait_messages(OLGA, 1))[0]
    assert "I'm Tandem" in welcome["text"]


async def test_the_chosen_language_beats_the_clients(bot) -> None:
    api = bot.api
    await send_from(api, OLGA, "/language en")
    await api.wait_messages(OLGA, 1)
    await send_from(api, OLGA, "/help")
    help_ = (await api.wait_messages(OLGA, 2))[1]
    assert not russian(help_["text"]), help_["text"]


async def test_a_message_too_long_is_refused_in_the_clients_language(api, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TANDEM_DISPATCHER__MAX_TEXT_CHARS", "50")
    async with running_bot(api, tmp_path / "data"):
        await send_from(api, OLGA, "очень " * 20)
        refusal = (await api.wait_messages(OLGA, 1))[0]
        assert "длинное" in refusal["text"] and "50" in refusal["text"], refusal["text"]
        await send_from(api, OLGA + 1, "very " * 20, language_code="en")
        refusal = (await api.wait_messages(OLGA + 1, 1))[0]
        assert "too long" in refusal["text"]


async def test_the_command_menu_is_registered_in_russian_too(bot) -> None:
    api = bot.api
    names = [name for name, _ in COMMANDS]
    assert [c["command"] for c in api.commands] == names
    menu = api.commands_by_language["ru"]
    assert [c["command"] for c in menu] == names
    assert all(russian(c["description"]) for c in menu), menu
    assert [c["description"] for c in api.commands_by_language["en"]] == [d for _, d in COMMANDS]


@pytest.mark.parametrize("kind, word", [("sticker", "стикеры"), ("voice", "голосовые")])
async def test_non_text_messages_are_answered_in_the_clients_language(bot, kind, word) -> None:
    api = bot.api
    await api.send_content(OLGA, kind)  # sent by an English client: the answer is English
    message = next(m for m in reversed(api.messages.values()) if kind in m)
    await api.send_update({"message": {**message, "message_id": message["message_id"] + 100_000,
                                       "from": {**message["from"], "language_code": "ru"}}})
    answers = await api.wait_messages(OLGA, 2)
    assert not russian(answers[0]["text"]) and word in answers[1]["text"]
