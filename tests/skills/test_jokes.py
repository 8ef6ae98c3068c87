"""Jokes and fun facts: data files checked at start-up, no repeats within a conversation until all were
told, "another one" answered by what was just told, and routing through the real bot."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.errors import ConfigError
from bot.core.skill import HistoryItem, Turn
from skills.fun_facts import FunFactSkill
from skills.jokes import JokeSkill
from skills.repertoire import DATA_DIR, Repertoire, load_items

DATA_FILES = ["jokes.en.yaml", "jokes.ru.yaml", "facts.en.yaml", "facts.ru.yaml"]
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
# The bot speaks to users as ты: no вы, вас, вам, ваш in any Russian text.
FORMAL_YOU = re.compile(r"(?<!\w)(вы|вас|вам|вами|ваш\w*)(?!\w)", re.IGNORECASE)


def turn(text: str, intent: str | None, language: str = "en", state: dict | None = None,
         history: list[HistoryItem] | None = None) -> Turn:
    annotations = Annotations(intent=IntentGuess(intent, 1.0, "rules") if intent else None)
    state = {} if state is None else state
    return Turn("c1", 1, "test", text, language, annotations, history=history or [], state=state)


@pytest.mark.parametrize("name", DATA_FILES)
def test_each_shipped_data_file_has_forty_clean_items_and_states_source_and_licence(name) -> None:
    path = DATA_DIR / name
    header = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert path.read_text(encoding="utf-8").startswith("#")
    assert any("CC0-1.0" in line for line in header) and any("Source" in line or "Источник" in line for line in header)
    items = load_items(path)
    assert len(items) >= 40
    language = name.split(".")[1]
    for item in items:
        assert bool(CYRILLIC.search(item.text)) == (language == "ru"), item.text
        if language == "ru":
            assert not FORMAL_YOU.search(item.text), item.text


@pytest.mark.parametrize(("content", "message"), [
    ("", "expected a mapping"),
    ("items: []\n", "non-empty list"),
    ("items:\n  - a joke\n  - ''\n", "item 2 must be a non-empty text"),
    ("items:\n  - same\n  - same\n", "item 2 repeats item 1"),
    ("items: [a, b]\nextra: 1\n", "expected a mapping with one key"),
    ("items: [unclosed\n", "cannot read"),
])
def test_a_bad_data_file_stops_start_up_naming_the_file(tmp_path: Path, content, message) -> None:
    path = tmp_path / "jokes.en.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as raised:
        JokeSkill({"files": {"en": str(path)}})
    assert str(path) in str(raised.value)


def test_a_missing_data_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        FunFactSkill({"files": {"ru": str(tmp_path / "nowhere.yaml")}})


def test_every_item_is_told_once_before_any_repeats_then_the_round_starts_over() -> None:
    repertoire = Repertoire({"en": load_items(DATA_DIR / "jokes.en.yaml")}, random.Random(7))
    count = len(repertoire.items["en"])
    state: dict = {}
    told = []
    for _ in range(count):
        item, restarted = repertoire.pick(state, "en")
        assert not restarted
        told.append(item.key)
    assert len(set(told)) == count
    item, restarted = repertoire.pick(state, "en")
    assert restarted and item.key != told[-1]  # a new round, not the joke that ended the last one
    following = [repertoire.pick(state, "en") for _ in range(count - 1)]
    assert not any(r for _, r in following)
    assert len({item.key, *(i.key for i, _ in following)}) == count


def test_items_are_kept_apart_per_language_and_unknown_languages_get_english() -> None:
    skill = JokeSkill(rng=random.Random(1))
    state: dict = {}
    english = skill.repertoire.pick(state, "de")[0]
    russian = skill.repertoire.pick(state, "ru")[0]
    assert not CYRILLIC.search(english.text) and CYRILLIC.search(russian.text)
    assert state["told"] == {"en": [english.key], "ru": [russian.key]}


def test_memory_of_a_changed_file_keeps_only_keys_still_in_it() -> None:
    repertoire = Repertoire({"en": load_items(DATA_DIR / "facts.en.yaml")}, random.Random(3))
    state = {"told": {"en": ["gone-from-file", 42]}}
    repertoire.pick(state, "en")
    assert len(state["told"]["en"]) == 1


async def test_the_round_over_is_said_once_when_all_jokes_were_told() -> None:
    skill = JokeSkill(rng=random.Random(2))
    state: dict = {}
    count = len(skill.repertoire.items["en"])
    replies = [await skill.respond(turn("tell me a joke", "joke", state=state)) for _ in range(count + 3)]
    said_over = [r for r in replies if r.startswith("That's every joke I know!")]
    assert len(said_over) == 1 and replies.index(said_over[0]) == count


async def test_a_joke_offers_another_and_a_fact_offers_another_fact() -> None:
    joke, fact = turn("tell me a joke", "joke"), turn("расскажи факт", "fun_fact", "ru")
    await JokeSkill().respond(joke)
    await FunFactSkill().respond(fact)
    assert joke.suggestions == ["Another one"] and fact.suggestions == ["Ещё факт"]


@pytest.mark.parametrize(("last_skill", "expected"), [
    ("joke", None),
    ("fun_fact", "Another fun fact, or a joke this time?"),
    ("smalltalk", "One more what?"),
    (None, "One more what?"),
])
async def test_another_one_is_answered_by_what_the_last_reply_was(last_skill, expected) -> None:
    history = [HistoryItem("user", "hi"), HistoryItem("bot", "something", last_skill)] if last_skill else []
    skill = JokeSkill()
    reply = await skill.respond(turn("another one", "another", history=history))
    if expected is None:
        assert reply in {item.text for item in skill.repertoire.items["en"]}
    else:
        assert reply.startswith(expected)


# --- through the real bot ------------------------------------------------------


async def test_tell_me_a_joke_reaches_the_joke_skill(talk) -> None:
    reply = await talk("ann", "tell me a joke")
    assert reply.skill == "joke" and reply.suggestions == ("Another one",)


async def test_forty_five_jokes_in_one_conversation_never_repeat_before_all_were_told(talk) -> None:
    count = len(load_items(DATA_DIR / "jokes.en.yaml"))
    texts = []
    for number in range(count):
        reply = await talk("bob", "another one" if number % 2 else "tell me a joke")
        assert reply.skill == "joke"
        texts.append(reply.text)
    assert count >= 45 and len(set(texts)) == count
    again = await talk("bob", "another joke")
    assert again.text.startswith("That's every joke I know!")


async def test_another_one_after_a_joke_is_a_new_joke_and_ends_when_the_subject_changes(talk) -> None:
    first = await talk("cid", "tell me a joke")
    second = await talk("cid", "another one")
    assert second.skill == "joke" and second.text != first.text
    chat = await talk("cid", "how are you?")
    assert chat.skill == "smalltalk"
    after_chat = await talk("cid", "another one")
    assert after_chat.text.startswith("One more what?")


async def test_a_russian_joke_in_russian_and_ещё_gives_another(talk) -> None:
    first = await talk("dee", "расскажи анекдот", "ru")
    assert first.skill == "joke" and CYRILLIC.search(first.text) and first.suggestions == ("Ещё",)
    second = await talk("dee", "ещё", "ru")
    third = await talk("dee", "еще один", "ru")
    assert second.skill == third.skill == "joke"
    assert len({first.text, second.text, third.text}) == 3


@pytest.mark.parametrize(("text", "language"), [
    ("tell me a fun fact", "en"), ("tell me something interesting", "en"), ("surprise me", "en"),
    ("расскажи интересный факт", "ru"), ("удиви меня", "ru"), ("расскажи что-нибудь интересное", "ru"),
])
async def test_fun_fact_requests_reach_the_fact_skill(talk, text, language) -> None:
    reply = await talk("eve", text, language)
    assert reply.skill == "fun_fact"
    assert bool(CYRILLIC.search(reply.text)) == (language == "ru")


@pytest.mark.parametrize(("text", "language"), [
    ("make me laugh", "en"), ("do you know any jokes?", "en"), ("пошути", "ru"),
    ("знаешь какую-нибудь шутку?", "ru"),
])
async def test_joke_requests_reach_the_joke_skill(talk, text, language) -> None:
    assert (await talk("fay", text, language)).skill == "joke"
