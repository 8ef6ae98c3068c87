"""The story opening set: the shipped files load and are what the evaluation needs; the loader
refuses unknown keys, missing fields, bad languages and unknown colours, naming file and item."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.evaluation.cli import DEFAULT_STORY_SET
from bot.evaluation.story_checks import count_sentences, mentions
from bot.evaluation.set_files import EvalSetError
from bot.evaluation.story_set import colour_family, load_openings, parse_stated_colour

GOOD = """
stories:
  - id: fox
    language: en
    opening: A fox found a red lantern. She carried it home.
"""


def write(tmp_path: Path, text: str, name: str = "set.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_set_loads_with_a_dozen_openings_per_language() -> None:
    openings = load_openings(DEFAULT_STORY_SET)
    by_language = Counter(item.language for item in openings)
    assert by_language["en"] >= 12 and by_language["ru"] >= 12
    assert {Path(item.source).stem for item in openings} == {"en", "ru"}
    assert all(item.id.startswith(item.language + "-") for item in openings)
    for language in ("en", "ru"):
        items = [item for item in openings if item.language == language]
        assert len({item.genre for item in items}) >= 10, f"{language}: too few genres"
        assert sum(bool(item.memory) for item in items) >= 2 and sum(bool(item.lore) for item in items) >= 2
        assert sum(bool(item.facts_exact) for item in items) >= 2
        assert all(item.facts for item in items)


def test_every_shipped_opening_is_two_to_six_sentences_and_names_its_facts() -> None:
    for item in load_openings(DEFAULT_STORY_SET):
        assert 2 <= count_sentences(item.opening) <= 6, item.id
        # A fact the opening never mentions could not survive into a continuation.
        missing = [fact for fact in item.facts if not mentions(fact, item.opening)]
        assert not missing, f"{item.id}: {missing}"
        for stated in item.stated_colours:
            assert mentions(stated.thing, item.opening), f"{item.id}: {stated.thing}"


def test_a_good_file_loads_with_its_source(tmp_path: Path) -> None:
    (item,) = load_openings(write(tmp_path, GOOD))
    assert (item.id, item.language, item.memory, item.lore, item.facts) == ("fox", "en", "", (), ())
    assert item.source == str(tmp_path / "set.yaml")


@pytest.mark.parametrize(("body", "message"), [
    ("  - {id: fox, language: en, opening: A fox ran. It hid., mood: grim}", "story 'fox': `mood`: unknown key"),
    ("  - {id: fox, language: en}", "story 'fox': `opening`: missing"),
    ("  - {language: en, opening: A fox ran. It hid.}", "story #1: `id`: missing"),
    ("  - {id: fox, language: de, opening: A fox ran. It hid.}", "story 'fox': `language`"),
    ("  - {id: fox, language: ru, opening: A fox ran into the woods and hid.}",
     "story 'fox': the opening is written in en, but `language` is ru"),
    ("  - {id: Fox, language: en, opening: A fox ran. It hid.}", "story 'Fox': `id`: an id is lowercase"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., facts_exact: [shiny lantern]}",
     "'shiny' is not a colour word"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., facts_exact: [lantern]}", "a colour and a thing"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., facts: ['  ']}", "`facts`: holds an empty string"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., lore: [{keys: [fox], text: sly, txt: x}]}",
     "`lore.0.txt`: unknown key"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., lore: [{keys: [], text: sly}]}", "`lore.0.keys`"),
    ("  - {id: fox, language: en, opening: A fox ran. It hid., source: x.yaml}", "`source`: the loader sets it"),
    ("  - just a string", "story #1: expected a mapping"),
])
def test_a_bad_item_names_the_file_the_item_and_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "stories:\n" + body + "\n")
    with pytest.raises(EvalSetError) as caught:
        load_openings(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("openings: []", "top-level `stories:` list"),
    ("stories: []\nlanguage: en", "unknown top-level keys ['language']"),
    ("stories: [", "cannot read"),
])
def test_a_bad_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EvalSetError, match="set.yaml: .*" + message.replace("[", r"\[").replace("]", r"\]")):
        load_openings(write(tmp_path, text))


def test_ids_are_unique_across_the_files_of_a_folder(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(EvalSetError, match=r"b\.yaml: story 'fox': the id is used again"):
        load_openings(tmp_path)


def test_a_missing_or_empty_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="no such file"):
        load_openings(tmp_path / "nowhere")
    with pytest.raises(EvalSetError, match="no story opening files"):
        load_openings(tmp_path)


def test_colours_are_told_by_family_in_both_languages() -> None:
    assert colour_family("Crimson") == colour_family("red") == colour_family("красной") == "red"
    assert colour_family("синим") == colour_family("голубая") == "blue"
    assert colour_family("чёрный") == colour_family("черную") == "black"
    # Words that only start like a colour stem are not colours.
    assert colour_family("сердце") is colour_family("белка") is colour_family("alarm") is None
    stated = parse_stated_colour("красная шкатулка")
    assert (stated.colour, stated.family, stated.thing) == ("красная", "red", "шкатулка")
