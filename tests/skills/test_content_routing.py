"""The content intents (jokes, facts, the clock, the profile) take their own messages through the real
bot and leave everyone else's alone; "tell me about yourself" reaches the about graph."""

from __future__ import annotations

import pytest

from tests.skills.conftest import SMALL_TALK_ANSWER


@pytest.mark.parametrize(("text", "language", "skill"), [
    ("how are you?", "en", "smalltalk"),
    ("как дела?", "ru", "smalltalk"),
    ("I love pizza", "en", "smalltalk"),
    ("today is my birthday", "en", "smalltalk"),
    ("tell me a story about a dragon", "en", "story"),
    ("tell me a funny story", "en", "story"),
    ("расскажи историю про дракона", "ru", "story"),
    ("help", "en", "help"),
    ("what can you do?", "en", "help"),
    ("помощь", "ru", "help"),
    ("bye", "en", "fallback"),
    ("пока", "ru", "fallback"),
    ("I want to leave feedback", "en", "feedback"),
    ("оставить отзыв", "ru", "feedback"),
    ("thanks for the joke", "en", "fallback"),
])
async def test_messages_of_other_skills_still_reach_them(talk, text, language, skill) -> None:
    assert (await talk("ann", text, language)).skill == skill


async def test_small_talk_answers_chat_after_a_joke(talk) -> None:
    await talk("bob", "tell me a joke")
    reply = await talk("bob", "how are you?")
    assert reply.skill == "smalltalk" and reply.text == SMALL_TALK_ANSWER


@pytest.mark.parametrize(("text", "language"), [
    ("tell me about yourself", "en"), ("what are you?", "en"), ("how old are you?", "en"),
    ("who created you?", "en"), ("who are you?", "en"), ("are you a bot?", "en"), ("what is Tandem?", "en"),
    ("расскажи о себе", "ru"), ("сколько тебе лет?", "ru"), ("кто тебя создал?", "ru"), ("кто ты?", "ru"),
])
async def test_questions_about_the_bot_reach_the_about_graph(talk, text, language) -> None:
    reply = await talk("cid", text, language)
    assert reply.skill == "graph" and reply.intent == "about_bot"
    if language == "en":
        assert reply.text.startswith("I'm Tandem, an open-source bot") and "no age or birthday" in reply.text
    else:
        assert reply.text.startswith("Я Тандем") and "нет ни возраста, ни дня рождения" in reply.text


async def test_what_are_you_doing_is_still_small_talk(talk) -> None:
    assert (await talk("dee", "what are you doing?")).skill == "smalltalk"


async def test_help_lists_the_new_skills_in_both_languages(talk) -> None:
    en = await talk("eve", "help")
    ru = await talk("eve", "помощь", "ru")
    for phrase in ("tell me a joke", "tell me a fun fact", "what time is it?", "my name is"):
        assert phrase in en.text
    for phrase in ("расскажи анекдот", "интересный факт", "который час?", "меня зовут"):
        assert phrase in ru.text
    for formal in ("скажите", "напишите", "оцените", " вами", " вас"):
        assert formal not in ru.text
