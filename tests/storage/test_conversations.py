"""ConversationRepo and FeedbackRepo on SQLite and PostgreSQL: ownership, message tree, state, deletion."""

from __future__ import annotations

import pytest

from bot.core.errors import InputError, NotFound
from bot.core.state import DialogState
from bot.storage.conversations import ConversationRepo, NewMessage
from bot.storage.database import Database
from bot.storage.feedback import FeedbackRepo


@pytest.fixture
async def repos(database_url: str):
    db = Database(database_url)
    await db.migrate()
    try:
        yield ConversationRepo(db), FeedbackRepo(db)
    finally:
        await db.close()


async def test_user_is_created_once_per_channel_and_external_id(repos) -> None:
    conversations, _ = repos
    first = await conversations.user_for("telegram", "42", "Ann")
    again = await conversations.user_for("telegram", "42")
    other_channel = await conversations.user_for("terminal", "42")
    assert first == again
    assert other_channel != first


async def test_current_conversation_is_kept_until_a_new_one_is_opened(repos) -> None:
    conversations, _ = repos
    user = await conversations.user_for("terminal", "ann")
    current = await conversations.current_conversation(user, "terminal")
    assert await conversations.current_conversation(user, "terminal") == current
    fresh = await conversations.open_conversation(user, "terminal")
    assert fresh != current
    assert await conversations.current_conversation(user, "terminal") == fresh


async def test_messages_chain_through_parent_pointers(repos) -> None:
    conversations, _ = repos
    user = await conversations.user_for("terminal", "ann")
    conversation = await conversations.current_conversation(user, "terminal")
    first = await conversations.add_user_message(conversation, NewMessage("user", "hi"))
    state = DialogState(flow="onboarding", node="welcome", slots={"name": "Ann"}, turn_count=1)
    second = await conversations.finish_turn(conversation, NewMessage("bot", "hello", skill="graph"), state)
    messages = await conversations.messages(conversation)
    assert [(m.id, m.parent_id, m.author) for m in messages] == [(first, None, "user"), (second, first, "bot")]
    loaded = await conversations.load_state(conversation)
    assert (loaded.flow, loaded.node, loaded.slots, loaded.turn_count) == ("onboarding", "welcome", {"name": "Ann"}, 1)


async def test_history_returns_the_latest_messages_oldest_first(repos) -> None:
    conversations, _ = repos
    user = await conversations.user_for("terminal", "ann")
    conversation = await conversations.current_conversation(user, "terminal")
    for i in range(5):
        await conversations.add_user_message(conversation, NewMessage("user", f"m{i}"))
    history = await conversations.history(conversation, 3)
    assert [h.text for h in history] == ["m2", "m3", "m4"]


async def test_tokens_identify_their_user_only(repos) -> None:
    conversations, _ = repos
    user, token = await conversations.create_token_user("api")
    assert await conversations.user_by_token(token) == user
    assert await conversations.user_by_token(token + "x") is None


async def test_feedback_checks_ownership_and_ranges(repos) -> None:
    conversations, feedback = repos
    ann = await conversations.user_for("api", "ann")
    bob = await conversations.user_for("api", "bob")
    conversation = await conversations.current_conversation(ann, "api")
    user_message = await conversations.add_user_message(conversation, NewMessage("user", "hi"))
    bot_message = await conversations.finish_turn(conversation, NewMessage("bot", "hello"), DialogState())

    await feedback.add_thumb(bot_message, ann, up=True)
    with pytest.raises(NotFound):
        await feedback.add_thumb(bot_message, bob, up=False)
    with pytest.raises(InputError):
        await feedback.add_thumb(user_message, ann, up=True)
    with pytest.raises(NotFound):
        await feedback.add_thumb(999_999, ann, up=True)

    await feedback.add_rating(conversation, ann, 5, "lovely")
    for bad in (0, 6, -1, 3.5, "4", True, None):
        with pytest.raises(InputError):
            await feedback.add_rating(conversation, ann, bad)
    with pytest.raises(NotFound):
        await feedback.add_rating(conversation, bob, 3)

    stored = await feedback.for_conversation(conversation)
    assert [(f.kind, f.value, f.comment) for f in stored] == [("thumb", 1, None), ("rating", 5, "lovely")]


async def test_deleting_a_user_removes_everything_of_theirs_only(repos) -> None:
    conversations, feedback = repos
    ann = await conversations.user_for("telegram", "1")
    bob = await conversations.user_for("telegram", "2")
    ann_conversation = await conversations.current_conversation(ann, "telegram")
    bob_conversation = await conversations.current_conversation(bob, "telegram")
    for conversation, user in ((ann_conversation, ann), (bob_conversation, bob)):
        await conversations.add_user_message(conversation, NewMessage("user", "hi"))
        message = await conversations.finish_turn(conversation, NewMessage("bot", "hello"), DialogState())
        await feedback.add_thumb(message, user, up=True)
        await feedback.add_rating(conversation, user, 4)

    await conversations.delete_user(ann)

    assert await conversations.owner_of(ann_conversation) is None
    assert await conversations.messages(ann_conversation) == []
    assert await feedback.for_conversation(ann_conversation) == []
    assert len(await conversations.messages(bob_conversation)) == 2
    assert len(await feedback.for_conversation(bob_conversation)) == 2
