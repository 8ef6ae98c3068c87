"""The routing policy on the shipped graphs, intents and skills (a fake generative model): a graph's
fallback node gives way to a skill that claims the message, and help, goodbye and feedback asked
for in so many words are honoured inside a skill that holds the conversation."""

from __future__ import annotations

import pytest

from bot.app import build_app
from bot.core.messages import Incoming
from bot.models.fake import FakeLanguageModel

ANSWER = "I'm doing well, thank you for asking."


@pytest.fixture
async def tandem(settings):
    app = await build_app(settings, language_model=FakeLanguageModel([ANSWER]))
    try:
        yield app
    finally:
        await app.close()


async def say(tandem, user: str, text: str, language: str = "en"):
    return await tandem.handle_turn(Incoming("test", user, text, language=language)).reply()


@pytest.mark.parametrize(("language", "hello", "chat"), [
    ("en", "hi", "how are you?"),
    ("ru", "привет", "как дела?"),
])
async def test_small_talk_after_the_greeting_is_answered_not_refused(tandem, language, hello, chat) -> None:
    greeted = await say(tandem, "ann", hello, language)
    assert greeted.skill == "graph"  # the onboarding flow welcomes
    reply = await say(tandem, "ann", chat, language)
    # Before: the onboarding flow's not_understood node ("Sorry, I didn't quite get that").
    assert reply.skill == "smalltalk"
    if language == "en":  # (a Russian turn refuses the fake model's English answer for a line of its own)
        assert reply.text == ANSWER


async def test_thanks_inside_the_onboarding_flow_gets_a_social_answer(tandem) -> None:
    await say(tandem, "bob", "hi")
    reply = await say(tandem, "bob", "thanks")
    assert reply.skill == "fallback" and reply.text == "You're welcome!"


async def test_what_nothing_claims_still_gets_the_flows_fallback(tandem) -> None:
    await say(tandem, "cid", "hi")
    reply = await say(tandem, "cid", "zxqv blorp")
    assert reply.skill == "graph" and "didn't quite get that" in reply.text


async def test_help_inside_a_story_answers_and_the_story_stays_open(tandem) -> None:
    await say(tandem, "dee", "let's write a story")
    helped = await say(tandem, "dee", "help")
    assert helped.skill == "help"
    after = await say(tandem, "dee", "The ferry left at dawn.")
    assert after.skill == "story"  # still writing: help was an aside


async def test_goodbye_inside_a_story_leaves_it(tandem) -> None:
    await say(tandem, "eve", "let's write a story")
    bye = await say(tandem, "eve", "bye")
    assert bye.skill != "story"  # not taken as a passage
    after = await say(tandem, "eve", "how are you?")
    assert after.skill == "smalltalk"
