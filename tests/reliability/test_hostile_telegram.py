"""The hostile-input corpus against the Telegram channel: the real python-telegram-bot polling a fake
Bot API that delivers hostile texts, captions, names, callback_data that is garbage or someone else's,
and updates with fields missing. Every refusal is a polite message or button answer, nothing refused
is stored, no reply is sent with a parse mode (so Markdown and HTML cannot break it), the bot never
logs a failed update, and it answers /help afterwards."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.channels.telegram_texts import TEXTS as CHANNEL_TEXTS
from sqlalchemy import select

from bot.storage.schema import Conversation, Feedback, FeedbackOffer, Message, User
from tests.channels.fake_bot_api import BOT_USERNAME, FakeBotApi
from tests.channels.telegram_harness import SECRET, RunningBot, running_bot
from tests.reliability.conftest import assert_no_traceback, clean_environment, row_counts, story_model
from tests.reliability.hostile_inputs import BODIES, CALLBACK_DATA, TEXTS, HostileText, HostileValue, params

pytestmark = pytest.mark.asyncio(loop_scope="module")
POLITE_BUTTON_ANSWERS = {CHANNEL_TEXTS[key]["en"] for key in ("stale", "not_yours")}
CHATS = itertools.count(900_001)
ANN_WEBHOOK = 880_001


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningBot]:
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp)
        fake = await FakeBotApi().start()
        try:
            async with running_bot(fake, tmp_path_factory.mktemp("telegram") / "data",
                                   language_model=story_model()) as running:
                yield running
        finally:
            await fake.close()


@pytest.fixture
def failed_updates(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records of updates the channel failed on (its error handler logs each one)."""
    caplog.set_level(logging.ERROR, logger="bot.channels.telegram")
    return caplog.records


def no_failures(records: list[logging.LogRecord]) -> None:
    failed = [r.getMessage() for r in records if r.levelno >= logging.ERROR and r.name.startswith("bot.")]
    assert not failed, failed


async def answered(bot: RunningBot, chat: int, text: str, count: int) -> dict[str, Any]:
    """Send `text` and wait for the chat's `count`-th bot message (the answer to it)."""
    await bot.api.send_text(chat, text)
    messages = await bot.api.wait_messages(chat, count, timeout=20)
    return messages[count - 1]


async def settled(bot: RunningBot, *chats: int) -> dict[str, int]:
    """Row counts once every stored bot answer in `chats` has its thumb offer, which the channel
    stores just after sending the answer."""
    external_ids = [str(chat) if chat > 0 else f"chat:{chat}" for chat in chats]

    async def answers_and_offers() -> tuple[int, int]:
        users = select(User.id).where(User.channel == "telegram", User.external_id.in_(external_ids))
        conversations = select(Conversation.id).where(Conversation.user_id.in_(users))
        answers = await bot.count(Message, Message.author == "bot", Message.conversation_id.in_(conversations))
        offers = await bot.count(FeedbackOffer, FeedbackOffer.kind == "thumb",
                                 FeedbackOffer.conversation_id.in_(conversations))
        return answers, offers

    await bot.eventually(answers_and_offers, lambda counts: counts[0] == counts[1])
    return await row_counts(bot.tandem)


async def started(bot: RunningBot, chat: int) -> dict[str, int]:
    """/start in a new chat, so that its user and conversation exist before the snapshot."""
    await answered(bot, chat, "/start", 1)
    return await settled(bot, chat)


async def assert_help_answers(bot: RunningBot, chat: int) -> None:
    before = len(bot.api.bot_messages(chat))
    reply = await answered(bot, chat, "/help", before + 1)
    assert "stor" in reply["text"].lower()


def sent_plain(bot: RunningBot) -> None:
    """No reply used a parse mode, so user text can never break Telegram's entity parsing."""
    for method in ("sendMessage", "editMessageText", "sendMessageDraft"):
        for call in bot.api.calls_of(method):
            assert "parse_mode" not in call.params, call.params
            assert_no_traceback(call.params.get("text", ""))


async def user_messages(bot: RunningBot, external_id: str) -> list[str]:
    users = await bot.rows(User, User.channel == "telegram", User.external_id == external_id)
    conversations = set(await _conversations_of(bot, users[0].id)) if users else set()
    return [m.text for m in await bot.rows(Message, Message.author == "user") if m.conversation_id in conversations]


async def _conversations_of(bot: RunningBot, user_id: int) -> list[str]:
    return [c.id for c in await bot.rows(Conversation, Conversation.user_id == user_id)]


# --- texts ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(TEXTS))
async def test_hostile_texts_get_a_polite_refusal_or_are_stored_cleaned(bot, failed_updates,
                                                                        case: HostileText) -> None:
    chat = next(CHATS)
    before = await started(bot, chat)
    reply = await answered(bot, chat, case.text, 2)
    assert reply["text"].strip()
    if case.refused:
        assert case.refusal in reply["text"]
        assert await row_counts(bot.tandem) == before
    else:
        stored = await bot.eventually(lambda: user_messages(bot, str(chat)), lambda texts: len(texts) == 2)
        assert stored == ["/start", case.stored]
    await assert_help_answers(bot, chat)
    sent_plain(bot)
    no_failures(failed_updates)


async def test_captions_of_photos_get_a_polite_answer_and_are_not_stored(bot, failed_updates) -> None:
    chat = next(CHATS)
    before = await started(bot, chat)
    for count, case in enumerate(TEXTS, 2):
        message = bot.api._user_message(chat, chat, photo=[{"file_id": "p", "file_unique_id": "pu", "width": 9,
                                                            "height": 9}], caption=case.text)
        await bot.api.send_update({"message": message})
        answer = (await bot.api.wait_messages(chat, count, timeout=20))[count - 1]
        assert "photos" in answer["text"] and "text" in answer["text"], case.name
    assert await row_counts(bot.tandem) == before
    await assert_help_answers(bot, chat)
    no_failures(failed_updates)


async def test_a_story_passage_with_markdown_and_html_comes_back_verbatim(bot, failed_updates) -> None:
    chat = next(CHATS)
    passage = next(c for c in TEXTS if c.name == "telegram_markdown_breakers").text
    closing = next(c for c in TEXTS if c.name == "unclosed_html").text
    await answered(bot, chat, "/story", 1)
    await answered(bot, chat, f"{passage} {closing}", 2)
    await bot.api.send_text(chat, "/show")
    await bot.api.wait_for(lambda: any(f"{passage} {closing}" in m.get("text", "")
                                       for m in bot.api.bot_messages(chat)), timeout=20)
    sent_plain(bot)
    no_failures(failed_updates)


async def test_hostile_names_are_stored_cleaned_and_answered(bot, failed_updates) -> None:
    chat = next(CHATS)
    message = bot.api._user_message(chat, chat, text="/help")
    message["from"] = {"id": chat, "is_bot": False, "first_name": "\ud800<script>\x00" * 100,
                       "last_name": "'; DROP TABLE users; --", "language_code": "\x00x"}
    message["entities"] = [{"type": "bot_command", "offset": 0, "length": 5}]
    await bot.api.send_update({"message": message})
    answer = (await bot.api.wait_messages(chat, 1, timeout=20))[0]
    assert "stor" in answer["text"].lower()
    user = (await bot.rows(User, User.external_id == str(chat)))[0]
    assert user.display_name == ("\ufffd<script>" * 100 + " '; DROP TABLE users; --")[:256]
    no_failures(failed_updates)


# --- buttons --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(CALLBACK_DATA))
async def test_garbage_callback_data_gets_a_polite_button_answer(bot, failed_updates, case: HostileValue) -> None:
    chat = next(CHATS)
    reply = await answered(bot, chat, "/help", 1)  # a reply with thumbs and quick replies under it
    conversation = (await _conversations_of(bot, (await bot.rows(User, User.external_id == str(chat)))[0].id))[0]
    before = await settled(bot, chat)
    query_id = await bot.api.click(chat, reply["message_id"], case.value.format(conversation=conversation))
    answers = await bot.api.wait_for(lambda: [c for c in bot.api.calls_of("answerCallbackQuery")
                                              if c.params["callback_query_id"] == query_id], timeout=20)
    assert answers[-1].params.get("text") in POLITE_BUTTON_ANSWERS, answers[-1].params
    assert await row_counts(bot.tandem) == before
    await assert_help_answers(bot, chat)
    no_failures(failed_updates)


async def test_someone_elses_buttons_store_nothing(bot, failed_updates) -> None:
    ann, bob = next(CHATS), next(CHATS)
    ann_rate = await answered(bot, ann, "/rate", 1)
    ann_help = await answered(bot, ann, "/help", 2)
    bob_help = await answered(bot, bob, "/help", 1)
    buttons = {b["text"]: b["callback_data"] for row in ann_help["reply_markup"]["inline_keyboard"] for b in row}
    rate = {b["text"]: b["callback_data"] for row in ann_rate["reply_markup"]["inline_keyboard"] for b in row}
    before = await settled(bot, ann, bob)
    clicks = [
        (bob, bob_help["message_id"], buttons["👍"]),       # Ann's thumb, forged into Bob's chat
        (bob, bob_help["message_id"], rate["5"]),           # Ann's rating, forged into Bob's chat
        (ann, ann_help["message_id"], buttons["👎"]),      # Bob clicking in Ann's chat (a forged update)
        (ann, ann_rate["message_id"], rate["1"]),
    ]
    for chat, message_id, data in clicks:
        query_id = await bot.api.click(chat, message_id, data, user_id=bob)
        answers = await bot.api.wait_for(lambda: [c for c in bot.api.calls_of("answerCallbackQuery")
                                                  if c.params["callback_query_id"] == query_id], timeout=20)
        assert answers[-1].params.get("text") == CHANNEL_TEXTS["not_yours"]["en"], data
    assert await row_counts(bot.tandem) == before
    assert await bot.count(Feedback) == before["feedback"]
    no_failures(failed_updates)


async def test_delete_confirmation_in_a_group_is_refused_for_everyone(bot, failed_updates) -> None:
    group = -next(CHATS)
    await bot.api.send_text(group, "/help", user_id=700, chat_type="group")
    message = (await bot.api.wait_messages(group, 1, timeout=20))[0]
    before = await settled(bot, group)
    query_id = await bot.api.click(group, message["message_id"], "x:yes", user_id=701)
    answers = await bot.api.wait_for(lambda: [c for c in bot.api.calls_of("answerCallbackQuery")
                                              if c.params["callback_query_id"] == query_id], timeout=20)
    assert answers[-1].params.get("text") == CHANNEL_TEXTS["not_yours"]["en"]
    assert await row_counts(bot.tandem) == before
    no_failures(failed_updates)


# --- updates with fields missing ------------------------------------------------------------------

def _base(chat: int) -> dict[str, Any]:
    return {"message_id": next(CHATS), "date": int(time.time()), "chat": {"id": chat, "type": "private",
                                                                         "first_name": "Ann"}}


def _sender(chat: int) -> dict[str, Any]:
    return {"id": chat, "is_bot": False, "first_name": "Ann"}


MISSING_FIELDS = {
    # name: (update without update_id, whether a polite answer comes: "message" | "button" | None)
    "message_without_sender": (lambda c: {"message": {**_base(c), "text": "hi"}}, None),
    "message_from_a_bot": (lambda c: {"message": {**_base(c), "from": {**_sender(c), "is_bot": True},
                                                  "text": "hi"}}, None),
    "message_without_text_or_content": (lambda c: {"message": {**_base(c), "from": _sender(c)}}, None),
    "service_message": (lambda c: {"message": {**_base(c), "from": _sender(c),
                                               "new_chat_members": [_sender(c + 1)]}}, None),
    "edited_message_without_sender": (lambda c: {"edited_message": {**_base(c), "text": "hi",
                                                                    "edit_date": int(time.time())}}, "message"),
    "channel_post": (lambda c: {"channel_post": {**_base(c), "chat": {"id": -c, "type": "channel", "title": "x"},
                                                 "text": "hi"}}, None),
    "update_with_nothing": (lambda c: {}, None),
    "callback_without_message": (lambda c: {"callback_query": {"id": f"q{c}", "from": _sender(c),
                                                               "chat_instance": "ci", "data": "t:1:1"}}, "button"),
    "callback_of_an_inline_message": (lambda c: {"callback_query": {
        "id": f"q{c}", "from": _sender(c), "chat_instance": "ci", "inline_message_id": "im1", "data": "q:0"}},
        "button"),
    "callback_without_data": (lambda c: {"callback_query": {
        "id": f"q{c}", "from": _sender(c), "chat_instance": "ci", "game_short_name": "g",
        "message": {**_base(c), "from": {"id": 7000001, "is_bot": True, "first_name": "Tandem"}, "text": "x"}}},
        "button"),
    "group_mention_outside_the_text": (lambda c: {"message": {
        **_base(c), "chat": {"id": -c, "type": "group", "title": "g"}, "from": _sender(c),
        "text": f"@{BOT_USERNAME}", "entities": [{"type": "mention", "offset": 40, "length": 14}]}}, None),
    "reply_to_a_message_without_sender": (lambda c: {"message": {
        **_base(c), "chat": {"id": -c, "type": "group", "title": "g"}, "from": _sender(c), "text": "hello",
        "reply_to_message": {**_base(c), "chat": {"id": -c, "type": "group", "title": "g"}, "text": "x"}}}, None),
}


@pytest.mark.parametrize("name", list(MISSING_FIELDS))
async def test_updates_with_fields_missing_are_ignored_or_answered_politely(bot, failed_updates, name: str) -> None:
    chat = next(CHATS)
    before = await started(bot, chat)
    make, answer = MISSING_FIELDS[name]
    update = make(chat)
    calls = len(bot.api.calls_of("answerCallbackQuery"))
    await bot.api.send_update(update)
    if answer == "message":
        edited = (await bot.api.wait_messages(chat, 2, timeout=20))[1]
        assert edited["text"] == CHANNEL_TEXTS["edited"]["en"]
    elif answer == "button":
        await bot.api.wait_calls("answerCallbackQuery", calls + 1, timeout=20)
        assert bot.api.calls_of("answerCallbackQuery")[-1].params.get("text") in POLITE_BUTTON_ANSWERS
    # The bot is alive, and the update left no row behind.
    await assert_help_answers(bot, chat)
    after = await settled(bot, chat)
    turn = {"messages": 2, "feedback_offers": 1}  # the /help turn itself: two messages, one thumb offer
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == turn
    no_failures(failed_updates)


# --- the webhook ------------------------------------------------------------------------------------

WEBHOOK_UPDATES = {
    "not_an_update": {"hello": "world"},
    "update_id_as_text": {"update_id": "one", "message": {"text": "hi"}},
    "message_without_chat": {"update_id": 5, "message": {"message_id": 1, "date": 0, "text": "hi"}},
    "sender_without_chat": {"update_id": 8, "message": {"message_id": 1, "date": 0, "text": "hi",
                                                        "from": {"id": 1, "is_bot": False, "first_name": "A"}}},
    "message_as_a_list": {"update_id": 6, "message": ["hi"]},
    "callback_as_text": {"update_id": 7, "callback_query": "t:1:1"},
}


async def test_hostile_webhook_bodies_are_403_without_the_secret_and_400_with_it(tmp_path, failed_updates) -> None:
    fake = await FakeBotApi().start()
    try:
        async with running_bot(fake, tmp_path / "data", mode="webhook",
                               webhook_url="https://tandem.example/telegram/webhook") as hooked:
            before = await row_counts(hooked.tandem)
            bodies = [case.raw for case in BODIES] + [json.dumps(u).encode() for u in WEBHOOK_UPDATES.values()]
            for raw in bodies:
                for secret, allowed in ((None, (403,)), (SECRET + "x", (403,)), (SECRET, (200, 400))):
                    headers = {"Content-Type": "application/json"}
                    if secret is not None:
                        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
                    response = await hooked.client.post("/telegram/webhook", data=raw, headers=headers)
                    text = await response.text()
                    assert_no_traceback(text)
                    assert response.status in allowed, (raw[:60], secret, text)
                    assert json.loads(text) == {"ok": True} if response.status == 200 else "error" in json.loads(text)
            assert await row_counts(hooked.tandem) == before
            update = {"update_id": 99, "message": {**fake._user_message(ANN_WEBHOOK, ANN_WEBHOOK, text="/help"),
                                                   "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}
            response = await hooked.client.post("/telegram/webhook", json=update,
                                                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert response.status == 200
            assert "stor" in (await fake.wait_messages(ANN_WEBHOOK, 1, timeout=20))[0]["text"].lower()
    finally:
        await fake.close()
    no_failures(failed_updates)
