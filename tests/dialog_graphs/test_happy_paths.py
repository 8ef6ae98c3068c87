"""Every shipped dialog graph replayed through the real dispatcher, in English and Russian."""

from __future__ import annotations

import re

import pytest

from bot.testing import HappyPathError, check_happy_path

ONBOARDING_EN = [
    ("hi", "I'm Tandem"),
    ("What can you do?", "Here is what I can do"),
    ("Leave feedback", re.compile(r"Thank you for taking the time!\s+How would you rate")),
    ("5", "Anything you'd like to add"),
    ("skip", "Thank you for the feedback"),
]
ONBOARDING_RU = [
    ("привет", "Я Тандем"),
    ("Что ты умеешь?", "Вот что я умею"),
    ("Оставить отзыв", "Как ты оценишь"),
    ("четыре", "Хочешь что-нибудь добавить"),
    ("всё было здорово", "комментарий сохранён"),
]
ONBOARDING_CANCEL = [
    ("hello", "What would you like to do?"),
    ("cancel", "let's stop here"),
]
ABOUT_EN = [
    ("what is tandem?", "open-source bot"),
    ("Is it private?", "Our conversation is saved"),
    ("How is my data stored?", "kept in this bot's database"),
    ("cancel", "Ask me anything else"),
]


@pytest.mark.parametrize(
    "path, language",
    [(ONBOARDING_EN, None), (ONBOARDING_RU, "ru"), (ONBOARDING_CANCEL, None), (ABOUT_EN, None)],
    ids=["onboarding-en", "onboarding-ru", "onboarding-cancel", "about-en"],
)
async def test_happy_path(tandem, path, language) -> None:
    await check_happy_path(tandem.handle_turn, path, language=language)


async def test_feedback_from_the_happy_path_is_stored(tandem) -> None:
    replies = await check_happy_path(tandem.handle_turn, ONBOARDING_EN)
    stored = await tandem.feedback.for_conversation(replies[-1].conversation_id)
    assert [(f.kind, f.value) for f in stored] == [("rating", 5)]


async def test_a_wrong_reply_fails_with_the_transcript(tandem) -> None:
    with pytest.raises(HappyPathError, match=r"turn 2.*\n.*user: hi"):
        await check_happy_path(tandem.handle_turn, [("hi", "I'm Tandem"), ("help", "no such text")])


async def test_a_message_the_active_flow_lets_go_can_enter_another_flow(tandem) -> None:
    # At about.privacy, "what is tandem?" is a transition; a greeting is not, so onboarding's trigger takes it.
    await check_happy_path(tandem.handle_turn, [
        ("is it private?", "Our conversation is saved"),
        ("hello", "I'm Tandem"),
    ])
