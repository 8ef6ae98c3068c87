"""The story opening set: the schema of evals/stories/*.yaml and its strict loader.

A file is `stories: [...]`; each item is an opening (the user's first passage) in English or
Russian, with what the story knows besides it (genre, premise, memory, lore) and what a
continuation should keep (`facts`) or must not change (`facts_exact`, a stated colour). Load time
is strict: an unknown key, a missing field, a bad language or an opening written in the other
language stops the load, naming the file and the item.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.evaluation.set_files import checked_id, load_set
from bot.story.polish import script_language

Language = Literal["en", "ru"]

# Colour words by family: words of one family never contradict each other ("red" and "crimson").
# English words are matched whole; Russian entries are adjective stems, matched with any adjective
# ending (красн -> красный, красной, красную), ё written as е.
COLOUR_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "red": (("red", "scarlet", "crimson"), ("красн", "ал", "багров")),
    "blue": (("blue", "azure", "navy"), ("син", "голуб", "лазурн")),
    "green": (("green", "emerald"), ("зелен", "изумрудн")),
    "yellow": (("yellow",), ("желт",)),
    "orange": (("orange", "ginger"), ("оранжев", "рыж")),
    "purple": (("purple", "violet", "lilac"), ("фиолетов", "лилов", "пурпурн", "сиренев")),
    "pink": (("pink",), ("розов",)),
    "brown": (("brown",), ("коричнев", "бур")),
    "white": (("white",), ("бел",)),
    "black": (("black",), ("черн",)),
    "grey": (("grey", "gray"), ("сер",)),
    "gold": (("gold", "golden"), ("золот",)),
    "silver": (("silver",), ("серебрян", "серебрист")),
}
_ADJECTIVE_ENDING = r"(?:ый|ий|ой|ая|яя|ое|ее|ые|ие|ого|его|ому|ему|ым|им|ом|ем|ую|юю|ых|их|ыми|ими|ей)"
_RU_COLOUR = {family: re.compile(rf"^(?:{'|'.join(stems)}){_ADJECTIVE_ENDING}$")
              for family, (_, stems) in COLOUR_FAMILIES.items()}
_EN_COLOUR = {word: family for family, (words, _) in COLOUR_FAMILIES.items() for word in words}


def colour_family(word: str) -> str | None:
    """The colour family of one word ("crimson" -> "red", "синим" -> "blue"), or None."""
    word = word.casefold().replace("ё", "е")
    if word in _EN_COLOUR:
        return _EN_COLOUR[word]
    return next((family for family, pattern in _RU_COLOUR.items() if pattern.match(word)), None)


class LoreEntry(BaseModel):
    """A world note the story is given, shown to the model when a key appears in the text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[str, ...] = Field(min_length=1)
    text: str = Field(min_length=1)


class StatedColour(BaseModel):
    """A `facts_exact` entry, "red lantern": a thing and the colour the opening gives it."""

    model_config = ConfigDict(frozen=True)

    colour: str
    family: str
    thing: str


class StoryOpening(BaseModel):
    """One opening: run through Tandem and through the naive prompt, and both texts checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    language: Language
    opening: str = Field(min_length=1)
    genre: str | None = None
    premise: str | None = None
    memory: str = ""
    lore: tuple[LoreEntry, ...] = ()
    # Names and things a continuation of the scene should mention (inflected forms count).
    facts: tuple[str, ...] = ()
    # "<colour> <thing>" as the opening states it; the same thing in another colour contradicts it.
    facts_exact: tuple[str, ...] = ()
    # Set by the loader: the file the item came from.
    source: str = ""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        return checked_id(value)

    @field_validator("facts", "facts_exact")
    @classmethod
    def _no_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not fact.strip() for fact in value):
            raise ValueError("holds an empty string")
        return tuple(" ".join(fact.split()) for fact in value)

    @model_validator(mode="after")
    def _consistent(self) -> StoryOpening:
        written_in = script_language(self.opening)
        if written_in is not None and written_in != self.language:
            raise ValueError(f"the opening is written in {written_in}, but `language` is {self.language}")
        for fact in self.facts_exact:
            parse_stated_colour(fact)  # raises ValueError naming the entry
        return self

    @property
    def stated_colours(self) -> tuple[StatedColour, ...]:
        return tuple(parse_stated_colour(fact) for fact in self.facts_exact)


def parse_stated_colour(fact: str) -> StatedColour:
    """"red lantern" / "красная шкатулка" -> StatedColour; ValueError unless it is a known colour
    word followed by one word naming the thing."""
    words = fact.split()
    if len(words) != 2:
        raise ValueError(f"a `facts_exact` entry is a colour and a thing, e.g. 'red lantern', got {fact!r}")
    family = colour_family(words[0])
    if family is None:
        raise ValueError(f"`facts_exact` {fact!r}: {words[0]!r} is not a colour word the check knows")
    return StatedColour(colour=words[0], family=family, thing=words[1])


def load_openings(path: Path) -> list[StoryOpening]:
    """Every opening of one file, or of every *.yaml of a folder, in file order; ids are unique
    across the whole set."""
    return load_set(path, StoryOpening, key="stories", noun="story", file_kind="story opening")
