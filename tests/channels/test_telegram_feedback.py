"""Telegram end to end: thumbs, 1–5 ratings with a comment, offers and answers, /deletemydata."""

from __future__ import annotations

from bot.channels import telegram_keyboards as kb
from bot.storage.schema import Conversation, DialogStateRow, Feedback, FeedbackOffer, Message, Story, User
from tests.channels.telegram_harness import api, bot  # noqa: F401 - fixtures

ANN, BOB = 501, 502


def callback_data(message: dict, label: str) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"] == label:
                return button["callback_data"]
    raise AssertionError(label)


async def test_thumbs_are_stored_answered_and_shown(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    reply = (await api.wait_messages(ANN, 1))[0]
    stored = (await bot.rows(Message, Message.author == "bot"))[0]
    data = callback_data(reply, "👎")
    assert data == f"t:{stored.id}:0" and len(data.encode()) <= kb.MAX_CALLBACK_BYTES

    query_id = await api.click_button(ANN, "👎")
    await api.wait_for(lambda: "👎 ✓" in api.buttons(api.bot_messages(ANN)[0]))
    assert "👍" not in api.buttons(api.bot_messages(ANN)[0])
    answers = [c for c in api.calls_of("answerCallbackQuery") if c.params["callback_query_id"] == query_id]
    assert answers and "Thanks" in answers[0].params["text"]
    thumbs = await bot.rows(Feedback)
    await bot.eventually(lambda: bot.rows(FeedbackOffer, FeedbackOffer.answered), bool)
    assert [(f.kind, f.value, f.message_id, f.channel) for f in thumbs] == [("thumb", -1, stored.id, "telegram")]
    offers = await bot.rows(FeedbackOffer, FeedbackOffer.kind == "thumb")
    assert [o.answered for o in offers] == [True]


async def test_someone_elses_thumb_button_stores_nothing(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    reply = (await api.wait_messages(ANN, 1))[0]
    # Bob forges a click on Ann's message id from his own chat.
    await api.send_text(BOB, "/help")
    await api.wait_messages(BOB, 1)
    forged = callback_data(reply, "👍")
    bob_message = api.bot_messages(BOB)[0]
    await api.click(BOB, bob_message["message_id"], forged)
    await api.wait_for(lambda: any("isn't for you" in (c.params.get("text") or "")
                                   for c in api.calls_of("answerCallbackQuery")))
    assert await bot.count(Feedback) == 0


async def test_rate_gives_a_rating_keyboard_then_a_comment(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/rate")
    ask = (await api.wait_messages(ANN, 1))[0]
    assert api.buttons(ask)[:5] == ["1", "2", "3", "4", "5"]
    conversation = (await bot.rows(Conversation))[0]
    assert callback_data(ask, "4") == f"r:{conversation.id}:4"
    await api.click_button(ANN, "4")
    comment_ask = (await api.wait_messages(ANN, 2))[1]
    assert "comment" in comment_ask["text"].lower()
    assert f"{kb.STARS} 4/5 ✓" in api.buttons(api.bot_messages(ANN)[0])
    await api.send_text(ANN, "The dragon was great, the ending too quick.")
    await api.wait_messages(ANN, 3)
    feedback = await bot.rows(Feedback, Feedback.kind != "thumb")
    assert [(f.kind, f.value, f.comment) for f in feedback] == [
        ("rating", 4, None), ("comment", None, "The dragon was great, the ending too quick.")]
    rating_offers = await bot.rows(FeedbackOffer, FeedbackOffer.kind == "rating")
    assert [o.answered for o in rating_offers] == [True]


async def test_a_conversation_end_offers_a_rating_that_lands_with_its_comment(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    await api.wait_messages(ANN, 1)
    await api.send_text(ANN, "bye")
    goodbye = (await api.wait_messages(ANN, 2))[1]
    assert api.buttons(goodbye)[:5] == ["1", "2", "3", "4", "5"]
    offers = await bot.eventually(lambda: bot.rows(FeedbackOffer, FeedbackOffer.kind == "rating"), bool)
    assert [o.answered for o in offers] == [False]

    await api.click_button(ANN, "5")
    ask = (await api.wait_messages(ANN, 3))[2]
    assert "comment" in ask["text"].lower() and api.buttons(ask)[0] == "skip"  # then the thumbs of any reply
    await api.send_text(ANN, "Lovely, thanks")
    await api.wait_messages(ANN, 4)
    feedback = await bot.rows(Feedback, Feedback.kind != "thumb")
    assert [(f.kind, f.value, f.comment) for f in feedback] == [("rating", 5, None), ("comment", None, "Lovely, thanks")]
    offers = await bot.rows(FeedbackOffer, FeedbackOffer.kind == "rating")
    assert [o.answered for o in offers] == [True]
    # The comment went to the feedback skill, which let the conversation go afterwards.
    state = await bot.tandem.conversations.load_state(offers[0].conversation_id)
    assert state.active_skill is None


async def test_skip_after_a_rating_stores_no_comment(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "bye")
    await api.wait_messages(ANN, 1)
    await api.click_button(ANN, "2")
    await api.wait_messages(ANN, 2)
    await api.click_button(ANN, "skip")
    thanks = (await api.wait_messages(ANN, 3))[2]
    assert "Thank you" in thanks["text"]
    feedback = await bot.rows(Feedback, Feedback.kind != "thumb")
    assert [(f.kind, f.value) for f in feedback] == [("rating", 2)]


async def test_deletemydata_asks_then_deletes_conversations_stories_and_feedback(bot) -> None:
    api = bot.api
    await api.send_text(ANN, "/help")
    await api.wait_messages(ANN, 1)
    await api.click_button(ANN, "👍")
    await api.wait_for(lambda: "👍 ✓" in api.buttons(api.bot_messages(ANN)[0]))
    ann_id = (await bot.rows(User))[0].id
    await bot.tandem.stories.start(ann_id, title="The Lantern", text="A fox found a lantern.")
    await api.send_text(BOB, "/help")
    await api.wait_messages(BOB, 1)

    await api.send_text(ANN, "/deletemydata")
    confirm = (await api.wait_messages(ANN, 2))[1]
    assert "cannot be undone" in confirm["text"]
    await api.click_button(ANN, "No, keep it")
    await api.wait_for(lambda: "nothing was deleted" in api.texts(ANN)[1])
    assert await bot.count(User) == 2

    await api.send_text(ANN, "/deletemydata")
    await api.wait_messages(ANN, 3)
    await api.click_button(ANN, "Yes, delete everything")
    await api.wait_for(lambda: "deleted" in api.texts(ANN)[2])
    assert [u.external_id for u in await bot.rows(User)] == [str(BOB)]
    assert await bot.count(Story) == 0
    assert await bot.count(Feedback) == 0
    bob_conversation = (await bot.rows(Conversation))
    assert len(bob_conversation) == 1
    assert await bot.count(Message, Message.conversation_id != bob_conversation[0].id) == 0
    assert await bot.count(DialogStateRow, DialogStateRow.conversation_id != bob_conversation[0].id) == 0
