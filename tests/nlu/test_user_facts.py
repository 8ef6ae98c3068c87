"""The user_facts annotator: names and likes users state about themselves, and the many look-alikes
that are neither, in English and Russian."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations
from bot.nlu.user_facts import UserFactsAnnotator, extract_user_facts


@pytest.mark.parametrize(("text", "name"), [
    ("my name is Olga", "Olga"),
    ("My name's olga", "Olga"),
    ("my name is olga petrova", "Olga Petrova"),
    ("hi, my name is Olga and I like cats", "Olga"),
    ("My name is Olga. Nice to meet you", "Olga"),
    ("my name is olga btw", "Olga"),
    ("I'm Olga", "Olga"),
    ("Hi, I'm Olga!", "Olga"),
    ("hey I am Max", "Max"),
    ("I'm Olga Petrova, nice to meet you", "Olga Petrova"),
    ("I'm Olga from Paris", "Olga"),
    ("I'm Sam and I like cats", "Sam"),
    ("I'M OLGA", "Olga"),
    ("I'm Mary-Jane", "Mary-Jane"),
    ("call me Sam", "Sam"),
    ("you can call me Sam please", "Sam"),
    ("just call me sam", "Sam"),
    ("please call me Dr. Smith", "Dr. Smith"),
    ("people call me Kate", "Kate"),
    ("I go by Alex", "Alex"),
    ("my name is \"Olga\"", "Olga"),
    ("меня зовут Ольга", "Ольга"),
    ("Меня зовут ольга", "Ольга"),
    ("Меня зовут Анна Петрова", "Анна Петрова"),
    ("привет, меня зовут Оля, а тебя?", "Оля"),
    ("мое имя — Оля", "Оля"),
    ("зовут меня Пётр", "Пётр"),
    ("я Ольга", "Ольга"),
    ("Я — Оля", "Оля"),
    ("Я Ольга, приятно познакомиться", "Ольга"),
    ("зови меня Саша", "Саша"),
    ("можешь звать меня просто Андрей", "Андрей"),
    # «Зови меня …» takes the instrumental as often as the nominative.
    ("зови меня Сашей", "Саша"),
    ("называй меня Олей", "Оля"),
    ("называй меня Машей", "Маша"),
    ("называй меня Иваном", "Иван"),
    ("зови меня Игорем", "Игорь"),
    ("зови меня Ольгой", "Ольга"),
    ("зови меня Алексеем", "Алексей"),
])
def test_a_stated_name_is_found(text, name) -> None:
    assert extract_user_facts(text).get("name") == name


@pytest.mark.parametrize("text", [
    "I'm tired", "I'm Tired", "I'm fine", "I'm fine, thanks", "I'm from Paris", "I'm going home", "I'm Going home",
    "I'm English", "I'm a teacher", "I'm not sure", "I'm Happy", "I'm Back!", "I'm New here", "I'm Sorry",
    "im olga", "I'm Travelling next week", "I'm so Bored", "I'm into jazz", "I'm Alive",
    "what's my name?", "do you remember my name?", "is my name Olga?", "my name is not important",
    "my name is a secret", "my friend's name is Bob", "her name is Olga", "The knight said: \"my name is Bob\"",
    "call me later", "call me maybe", "call me a taxi", "call me when you're free", "don't call me Sam",
    "never call me that", "what will you call me?",
    "как меня зовут?", "ты помнишь, как меня зовут?", "меня зовут не Оля", "я устал", "Я Рад тебя видеть",
    "я из Москвы", "я тоже", "не называй меня так", "я дома", "Я Устал", "я оля",
    "forget my name", "забудь, как меня зовут",
])
def test_what_is_not_a_name_is_not_taken_for_one(text) -> None:
    assert "name" not in extract_user_facts(text)


@pytest.mark.parametrize(("text", "likes"), [
    ("I like cats", ["cats"]),
    ("i love cats!!!", ["cats"]),
    ("I love cats and rainy days", ["cats", "rainy days"]),
    ("I like cats, dogs and rainy days", ["cats", "dogs", "rainy days"]),
    ("I love cats and I also like dogs", ["cats", "dogs"]),
    ("I like cats, but not dogs", ["cats"]),
    ("I really love Harry Potter but not the films", ["Harry Potter"]),
    ("I like to swim", ["swimming"]),
    ("I love to bake", ["baking"]),
    ("I enjoy reading", ["reading"]),
    ("I love the sea", ["the sea"]),
    ("i like my cat", ["my cat"]),
    ("I'm a big fan of football", ["football"]),
    ("my favourite colour is blue", ["blue"]),
    ("my favorite food is pizza!", ["pizza"]),
    ("Do you know that I like cats?", ["cats"]),
    ("я люблю кошек", ["кошек"]),
    ("Люблю дождливые дни", ["дождливые дни"]),
    ("я люблю кошек, собак и хомяков", ["кошек", "собак", "хомяков"]),
    ("я люблю гулять и читать книги", ["гулять", "читать книги"]),
    ("мне нравятся дождливые дни", ["дождливые дни"]),
    # «Мне нравится пицца» is said back as «ты любишь пиццу»: the like is kept in the accusative.
    ("мне нравится пицца", ["пиццу"]),
    ("мне очень нравится итальянская кухня", ["итальянскую кухню"]),
    ("мне нравится осень, потому что красиво", ["осень"]),
    ("мой любимый цвет синий", ["синий"]),
    ("моя любимая еда — пицца", ["пиццу"]),
    ("моё любимое время года — осень", ["осень"]),
    ("обожаю «Мастер и Маргарита»", ["«Мастер и Маргарита»"]),
    ("Меня зовут Оля, и я люблю котиков", ["котиков"]),
])
def test_stated_likes_are_found_as_short_phrases(text, likes) -> None:
    assert extract_user_facts(text).get("likes") == likes


@pytest.mark.parametrize("text", [
    "I like it", "I love you", "I love you too", "I like that", "I love this!", "I like it when you tell jokes",
    "I like your jokes", "I like the idea", "I love how you write", "I like talking to you",
    "I'd like to write a story",
    "I would like a joke", "I don't like cats", "I no longer like cats", "what do I like?", "do I like cats?",
    "I liked the film", "my favourite colour is not blue", "what's my favourite colour?",
    "I like " + "very long things " * 6,
    "мне нравится это", "мне нравится", "я люблю тебя", "что я люблю?", "я не люблю кошек", "я не очень люблю кошек",
    "мне не нравится осень", "мне нравится с тобой болтать", "мне нравится твоя история",
    "Мне нравится, что ты смешной",
    "мне нравится эта идея", "ты любишь кошек?", "forget that I like cats", "забудь, что я люблю кошек",
    "The knight said: \"I love the sea\"",
])
def test_what_is_not_a_like_is_not_taken_for_one(text) -> None:
    assert "likes" not in extract_user_facts(text)


async def test_the_annotator_sets_its_value_only_when_it_found_something() -> None:
    annotator = UserFactsAnnotator()
    found, nothing = Annotations(), Annotations()
    await annotator.annotate("Hi, I'm Olga and I love rainy days", found)
    await annotator.annotate("how are you?", nothing)
    assert found.values["user_facts"] == {"name": "Olga", "likes": ["rainy days"]}
    assert "user_facts" not in nothing.values


def test_only_the_start_of_a_long_message_is_read() -> None:
    passage = "The ferry left at dawn. " * 20 + "My name is Bob."
    assert extract_user_facts(passage) == {}
