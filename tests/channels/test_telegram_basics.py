"""Telegram end to end: /start and help, a graph conversation, commands, non-text updates, groups, logs."""

from __future__ import annotations

import logging

import pytest

from bot.channels.telegram_texts import COMMANDS
from bot.core.errors import ConfigError
from bot.storage.schema import Conversation, Message, User
from tests.channels.fake_bot_api import BOT_USERNAME
from tests.channels.telegram_harness import api, bot, running_bot  # noqa: F401 - fixtures

ANN = 501


async def test_start_registers_commands_and_polls(bot) -> None:
    api = bot.api
    assert api.calls_of("getMe") and api.calls_of("deleteWebhook")
    names = [c["command"] for c in api.commands]
    assert names == [name for name, _ in COMMANDS]
    for required in ("start", "help", "story", "continue", "retry", "undo", "export", "rate", "feedback",
                     "reset", "language", "deletemydata"):
        assert required in names
    await api.wait_calls("getUpdates")


async def test_start_and_help_answer_and_are_stored(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/start")
    welcome = (await api.wait_messages(ANN, 1))[0]
    assert "Tandem" in welcome["text"]
    assert "What can you do?" in api.buttons(welcome)
    assert {"👍", "👎"} <= set(api.buttons(welcome))
    assert all("parse_mode" not in c.params for c in api.calls_of("sendMessage"))

    await api.send_text(ANN, "/help")
    help_ = (await api.wait_messages(ANN, 2))[1]
    assert "stor" in help_["text"].lower()

    users = await bot.rows(User, User.channel == "telegram")
    assert [u.external_id for u in users] == [str(ANN)]
    messages = await bot.rows(Message)
    assert [(m.author, m.text) for m in messages][:1] == [("user", "/start")]
    assert [m.author for m in messages] == ["user", "bot", "user", "bot"]


async def test_a_scripted_graph_conversation_by_buttons(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/start")
    await api.wait_messages(ANN, 1)
    await api.click_button(ANN, "What can you do?")
    second = (await api.wait_messages(ANN, 2))[1]
    assert "what I can do" in second["text"]
    # The clicked quick replies are gone, so they cannot be sent twice; the thumbs stay.
    first = api.bot_messages(ANN)[0]
    assert "What can you do?" not in api.buttons(first) and "👍" in api.buttons(first)
    assert api.calls_of("answerCallbackQuery")
    stored = await bot.rows(Message, Message.author == "user")
    assert [m.text for m in stored] == ["/start", "What can you do?"]
    bot_rows = await bot.rows(Message, Message.author == "bot")
    assert [m.node for m in bot_rows] == ["welcome", "capabilities"]


async def test_non_text_and_edited_messages_get_a_polite_answer(bot) -> None:
    api = bot.api
    kinds = ["sticker", "photo", "voice", "document", "location"]
    for index, kind in enumerate(kinds, 1):
        await api.send_content(ANN, kind)
        await api.wait_messages(ANN, index)
    texts = api.texts(ANN)
    for kind, text in zip(("stickers", "photos", "voice messages", "files", "locations"), texts):
        assert kind in text and "text" in text
    message = await api.send_text(ANN, "hello")
    await api.wait_messages(ANN, len(kinds) + 1)
    await api.send_edit(message, "hello again")
    edited = (await api.wait_messages(ANN, len(kinds) + 2))[-1]
    assert "edit" in edited["text"]
    # Only the text message was a turn.
    assert [m.text for m in await bot.rows(Message, Message.author == "user")] == ["hello"]


async def test_in_a_group_only_commands_and_mentions_are_answered(bot) -> None:
    api = bot.api
    group = -100200
    await api.send_text(group, "just talking among ourselves", user_id=601, chat_type="group")
    await api.send_content(group, "sticker", user_id=601, chat_type="group")
    await api.send_text(group, "/help@SomeOtherBot", user_id=601, chat_type="group")
    await api.send_text(group, "/help", user_id=601, chat_type="group")
    answer = (await api.wait_messages(group, 1))[0]
    assert "stor" in answer["text"].lower()
    await api.send_text(group, f"@{BOT_USERNAME} hello", user_id=602, chat_type="group")
    await api.wait_messages(group, 2)
    await api.wait_for(lambda: len(api.calls_of("getUpdates")) >= 3)
    assert len(api.bot_messages(group)) == 2
    # Group replies quote the message they answer and never use drafts.
    assert all(c.params.get("reply_parameters") or c.params.get("reply_to_message_id")
               for c in api.calls_of("sendMessage", group))
    assert not api.calls_of("sendMessageDraft", group)
    users = await bot.rows(User, User.channel == "telegram")
    assert [u.external_id for u in users] == [f"chat:{group}"]
    stored = await bot.rows(Message, Message.author == "user")
    assert [m.text for m in stored] == ["/help", "hello"]


async def test_language_command_sets_the_conversation_slot(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/language")
    ask = (await api.wait_messages(ANN, 1))[0]
    assert api.buttons(ask) == ["English", "Русский"]
    await api.click_button(ANN, "Русский")
    await api.wait_messages(ANN, 2)
    await api.send_text(ANN, "/help")
    help_ = (await api.wait_messages(ANN, 3))[2]
    assert "Я Тандем" in help_["text"]
    conversation = (await bot.rows(Conversation))[0]
    state = await bot.tandem.conversations.load_state(conversation.id)
    assert state.slots["language"] == "ru"


async def test_the_token_never_reaches_the_logs(api, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(api, tmp_path / "data") as running:
        api.fail("sendMessage", status=502, description="Bad Gateway")
        await api.send_text(ANN, "/help")
        await api.wait_messages(ANN, 1)
        assert running.channel.application is not None
    assert "telegram channel started" in caplog.text  # the logs were captured
    assert "telegram call failed, retrying method=sendMessage" in caplog.text  # the 502, with its error
    assert api.token not in caplog.text
    assert api.token.split(":")[1] not in caplog.text


async def test_a_refused_token_stops_start_up_with_a_clear_error(api, tmp_path) -> None:
    with pytest.raises(ConfigError, match="refused the bot token"):
        async with running_bot(api, tmp_path / "data", token="999:not-the-token"):
            pass


async def test_webhook_mode_without_a_usable_secret_is_a_config_error(api, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tests.channels.telegram_harness.SECRET", "has spaces")
    with pytest.raises(ConfigError, match="TANDEM_TELEGRAM_WEBHOOK_SECRET"):
        async with running_bot(api, tmp_path / "data", mode="webhook", webhook_url="https://x.example/telegram/webhook"):
            pass
