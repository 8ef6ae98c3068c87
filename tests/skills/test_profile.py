"""The profile skill: what the user told about themselves, said back from the slots; introductions
greeted by name; "forget my name"; and the whole path through the real bot, in both languages."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.skill import Turn
from skills.profile import ProfileSkill


def turn(text: str, intent: str | None, language: str = "en", slots: dict | None = None,
         facts: dict | None = None) -> Turn:
    annotations = Annotations(intent=IntentGuess(intent, 1.0, "rules") if intent else None)
    if facts:
        annotations.values["user_facts"] = facts
    return Turn("c1", 1, "test", text, language, annotations, slots={} if slots is None else slots)


KNOWN = {"user_name": "Olga", "user_likes": ["cats", "rainy days", "my dog"]}


@pytest.mark.parametrize(("text", "language", "answer"), [
    ("what's my name?", "en", "You're Olga."),
    ("what do I like?", "en", "You told me you like cats, rainy days and your dog."),
    ("как меня зовут?", "ru", "Тебя зовут Olga."),
])
async def test_what_the_user_told_is_said_back(text, language, answer) -> None:
    assert await ProfileSkill().respond(turn(text, "user_profile", language, dict(KNOWN))) == answer


async def test_what_do_you_know_about_me_gives_everything_and_how_to_forget_it() -> None:
    reply = await ProfileSkill().respond(turn("what do you know about me?", "user_profile", slots=dict(KNOWN)))
    assert reply.startswith("You're Olga. You told me you like cats, rainy days and your dog.")
    assert "forget everything about me" in reply


async def test_russian_likes_are_said_back_in_the_second_person() -> None:
    slots = {"user_likes": ["кошек", "мою собаку", "пиццу"]}
    reply = await ProfileSkill().respond(turn("что я люблю?", "user_profile", "ru", slots))
    assert reply == "Помню, что ты любишь кошек, твою собаку и пиццу."


@pytest.mark.parametrize(("text", "language", "answer"), [
    ("what's my name?", "en", "You haven't told me your name yet. What should I call you?"),
    ("what do I like?", "en", "You haven't told me what you like yet. What do you enjoy?"),
    ("как меня зовут?", "ru", "Я пока не знаю, как тебя зовут. Как мне к тебе обращаться?"),
    ("что я люблю?", "ru", "Я пока не знаю, что ты любишь. Расскажешь?"),
])
async def test_it_says_honestly_what_it_does_not_know(text, language, answer) -> None:
    assert await ProfileSkill().respond(turn(text, "user_profile", language)) == answer


async def test_nothing_known_about_the_user_is_said_as_such() -> None:
    reply = await ProfileSkill().respond(turn("что ты обо мне знаешь?", "user_profile", "ru"))
    assert reply.startswith("Я пока ничего о тебе не знаю.")


async def test_an_introduction_is_greeted_by_the_name_in_the_slot() -> None:
    introduced = turn("my name is Olga", "introduce", slots={"user_name": "Olga"}, facts={"name": "Olga"})
    reply = await ProfileSkill().respond(introduced)
    assert reply.startswith("Nice to meet you, Olga!") and introduced.suggestions
    renamed = turn("зови меня Сашей", "introduce", "ru", {"user_name": "Саша"}, {"name": "Саша"})
    assert await ProfileSkill().respond(renamed) == "Хорошо, Саша, договорились!"


async def test_an_introduction_without_a_name_asks_for_it() -> None:
    reply = await ProfileSkill().respond(turn("I'm Alive", "introduce"))
    assert reply == "Nice to meet you! I didn't catch your name, though. What should I call you?"


@pytest.mark.parametrize(("text", "language", "left", "answer"), [
    ("forget my name", "en", {"user_likes": ["cats", "rainy days", "my dog"]}, "Okay, I've forgotten your name."),
    ("forget what I like", "en", {"user_name": "Olga"}, "Okay, I've forgotten what you like."),
    ("forget that I like cats", "en", {"user_name": "Olga", "user_likes": ["rainy days", "my dog"]},
     "Okay, I've forgotten that you like cats."),
    ("forget everything about me", "en", {}, "Done: I've forgotten everything you told me about yourself."),
    ("забудь, как меня зовут", "ru", {"user_likes": ["cats", "rainy days", "my dog"]},
     "Хорошо, я забыл, как тебя зовут."),
    ("забудь всё обо мне", "ru", {}, "Готово: я забыл всё, что знал о тебе."),
])
async def test_forgetting_clears_what_was_asked(text, language, left, answer) -> None:
    slots = {"user_name": "Olga", "user_likes": ["cats", "rainy days", "my dog"]}
    assert await ProfileSkill().respond(turn(text, "forget_me", language, slots)) == answer
    assert slots == left


async def test_forgetting_what_it_never_knew_says_so() -> None:
    assert await ProfileSkill().respond(turn("forget my name", "forget_me")) == \
        "I didn't have that in my memory anyway."


# --- through the real bot ------------------------------------------------------


async def test_a_name_given_in_a_greeting_is_remembered_across_small_talk(talk) -> None:
    hello = await talk("ann", "hi, my name is Olga")
    assert "Olga" in hello.text
    assert (await talk("ann", "how are you?")).skill == "smalltalk"
    reply = await talk("ann", "what's my name?")
    assert reply.skill == "profile" and "Olga" in reply.text


async def test_the_name_outlives_a_story(talk) -> None:
    await talk("bob", "call me Sam")
    assert (await talk("bob", "tell me a story about a dragon")).skill == "story"
    assert (await talk("bob", "The dragon slept in the cave.")).skill == "story"
    await talk("bob", "/end")
    reply = await talk("bob", "do you remember my name?")
    assert reply.skill == "profile" and reply.text == "You're Sam."


@pytest.mark.parametrize("introduction", ["my name is Olga", "call me Olga", "I'm Olga"])
async def test_an_introduction_alone_is_answered_by_the_profile_skill(talk, introduction) -> None:
    reply = await talk("cid", introduction)
    assert reply.skill == "profile" and reply.text.startswith(("Nice to meet you, Olga!", "Okay, Olga it is!"))


@pytest.mark.parametrize("introduction", ["меня зовут Ольга", "привет, меня зовут Ольга", "я Ольга",
                                          "зови меня Ольгой"])
async def test_a_russian_introduction_is_answered_and_remembered(talk, introduction) -> None:
    reply = await talk("dee", introduction, "ru")
    assert reply.skill == "profile" and "Ольга" in reply.text
    assert (await talk("dee", "как дела?", "ru")).skill == "smalltalk"
    asked = await talk("dee", "ты помнишь, как меня зовут?", "ru")
    assert asked.skill == "profile" and asked.text == "Тебя зовут Ольга."


async def test_likes_told_in_passing_are_remembered_and_can_be_forgotten(talk) -> None:
    await talk("eve", "I love cats and rainy days")
    await talk("eve", "my favourite food is pizza")
    reply = await talk("eve", "what do I like?")
    assert reply.skill == "profile" and reply.text == "You told me you like cats, rainy days and pizza."
    forgot = await talk("eve", "forget everything about me")
    assert forgot.skill == "profile"
    assert (await talk("eve", "what do you know about me?")).text.startswith("I don't know anything about you yet")


async def test_forget_my_name_in_russian(talk) -> None:
    await talk("fay", "меня зовут Ольга", "ru")
    assert (await talk("fay", "забудь, как меня зовут", "ru")).text == "Хорошо, я забыл, как тебя зовут."
    assert (await talk("fay", "как меня зовут?", "ru")).text.startswith("Я пока не знаю, как тебя зовут.")
