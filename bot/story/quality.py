"""Judging a finished candidate against its story: facts it contradicts, how much it repeats,
how far it drifts from the last passage, and a score that ranks candidates best first.

Every check is a general rule about text, not about a story: a colour or a count attached to a
noun that the story already gave another colour or count; word sequences copied from the
story; no content word in common with where the story stopped. They are cheap (no model call),
so they run on every candidate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.story.polish import sentence_count

_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*|\d+", re.UNICODE)

# Colour words by the stem their inflected forms share (Russian adjectives change their ending).
COLOURS = {
    "en": ("red", "blue", "green", "yellow", "black", "white", "grey", "gray", "brown", "purple", "orange", "pink",
           "golden", "silver", "crimson", "scarlet"),
    "ru": ("красн", "син", "зелён", "зелен", "жёлт", "желт", "чёрн", "черн", "бел", "сер", "коричнев", "фиолетов",
           "оранжев", "розов", "золот", "серебрян", "алый", "алая", "алое", "алые"),
}
# Counting words by value; Russian ones in every case form, listed (a prefix such as "дв" or
# "тр" would read "двери", "двор", "трава" or "семья" as a number).
NUMBERS = {
    "en": {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12},
    "ru": {form: value for value, forms in {
        2: "два две двух двум двумя двое двоих",
        3: "три трёх трех трём трем тремя трое троих",
        4: "четыре четырёх четырех четырём четырем четырьмя четверо",
        5: "пять пяти пятью пятеро",
        6: "шесть шести шестью шестеро",
        7: "семь семи семеро",  # not "семью": far more often "the family" than "with seven"
        8: "восемь восьми восемью восьмью",
        9: "девять девяти девятью",
        10: "десять десяти десятью",
    }.items() for form in forms.split()},
}
# What may follow a Russian colour stem: an adjective's ending ("бел" + "ка" is a squirrel, not white).
RU_ADJECTIVE_ENDINGS = frozenset(
    "ый ий ой ая яя ое ее ые ие ого его ому ему ым им ом ем ую юю ых их ыми ими ей".split()) | {""}
# Function words never counted as shared content (drift) nor as the noun of an attribute.
STOPWORDS = {
    "en": set("""a an the and or but if then so of to in on at by for with from into onto over under up down out
        off is are was were be been being am do does did have has had it its it's he she they them his her their
        him i me my we us our you your this that these those there here as not no yes all any some one just very
        too also than more most much many can could would should will shall may might must what which who whom
        when where why how said says again back only even still now""".split()),
    "ru": set("""и а но или если то так же ли не ни да нет в во на за под над у о об от до из к ко с со по при
        для без через это этот эта эти тот та те он она оно они его её ее их ему ей им я ты мы вы меня мне тебя
        тебе нас вам был была было были быть есть как что кто где когда почему там тут здесь уже ещё еще только
        даже вот бы же себя свой своя свои всё все весь очень""".split()),
}
# English plurals without an -s, so "two men" is a count like "two boats".
IRREGULAR_PLURALS = {"men", "women", "children", "feet", "teeth", "mice", "geese", "people", "sheep", "deer", "fish"}
# Share of a candidate's word 5-grams found in the story above which it counts as repeating it,
# judged only on candidates with at least ECHO_MIN_GRAMS of them (a short one can share a
# formula like "The fox took a step" without copying anything).
ECHO_LIMIT = 0.3
ECHO_N, ECHO_MIN_GRAMS = 5, 6


@dataclass(frozen=True)
class CandidateReport:
    """What the checks found in one candidate; `score` ranks candidates (higher is better)."""

    contradictions: tuple[str, ...]
    echo: float
    overlap: float
    sentences: int
    score: float
    notes: tuple[str, ...]

    @property
    def worth_redoing(self) -> bool:
        """Generated again when there is a second try: it contradicts the story or copies it."""
        return bool(self.contradictions) or self.echo > ECHO_LIMIT


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _stem(word: str, language: str) -> str:
    """A crude stem, enough to see "lantern"/"lanterns" or "фонарь"/"фонаря" as one noun."""
    if language == "ru":
        return word[:5] if len(word) > 5 else word
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


def _colour(word: str, language: str) -> str | None:
    for colour in COLOURS.get(language, ()):
        if word == colour or (language == "ru" and word.startswith(colour)
                              and word[len(colour):] in RU_ADJECTIVE_ENDINGS):
            return colour.replace("ё", "е").replace("gray", "grey")
    return None


def _number(word: str, language: str) -> int | None:
    if word.isdigit():
        return int(word) if len(word) < 7 else None
    return NUMBERS.get(language, {}).get(word)


def _plural(word: str, language: str) -> bool:
    """Whether a word after a count reads as the counted noun (English: a plural; "5 went" is not)."""
    if language != "en":
        return True
    return word in IRREGULAR_PLURALS or (word.endswith("s") and not word.endswith("ss"))


def attributes(text: str, language: str) -> dict[str, dict[str, set]]:
    """{"colour": {noun stem: {colours}}, "count": {noun stem: {numbers}}} of attribute + noun pairs."""
    found: dict[str, dict[str, set]] = {"colour": {}, "count": {}}
    tokens = words(text)
    stop = STOPWORDS.get(language, set())
    for first, second in zip(tokens, tokens[1:], strict=False):
        if second in stop or len(second) < 3 or second.isdigit():
            continue
        noun = _stem(second, language)
        colour = _colour(first, language)
        if colour is not None and _colour(second, language) is None:
            found["colour"].setdefault(noun, set()).add(colour)
        number = _number(first, language)
        if number is not None and number >= 2 and _number(second, language) is None and _plural(second, language):
            found["count"].setdefault(noun, set()).add(number)
    return found


def contradictions(story_text: str, candidate: str, language: str) -> list[str]:
    """Attribute + noun pairs of the candidate that the story gave another value and never this one:
    "a blue lantern" after "the red lantern", "two moons" after "three moons"."""
    told, said = attributes(story_text, language), attributes(candidate, language)
    out = []
    for kind in ("colour", "count"):
        for noun, values in said[kind].items():
            before = told[kind].get(noun)
            if before and not values & before:
                out.append(f"{kind} of {noun!r}: {sorted(map(str, values))[0]} here, "
                           f"{sorted(map(str, before))[0]} in the story")
    return out


def echo(story_text: str, candidate: str, n: int = ECHO_N) -> float:
    """Share of the candidate's word n-grams that the story already has (0 = all new; a
    candidate too short to tell counts as new)."""
    said = words(candidate)
    grams = [tuple(said[i:i + n]) for i in range(len(said) - n + 1)]
    if len(grams) < ECHO_MIN_GRAMS:
        return 0.0
    told = words(story_text)
    known = {tuple(told[i:i + n]) for i in range(len(told) - n + 1)}
    return sum(g in known for g in grams) / len(grams)


def content_words(text: str, language: str) -> set[str]:
    stop = STOPWORDS.get(language, set())
    return {_stem(w, language) for w in words(text) if w not in stop and len(w) > 2 and not w.isdigit()}


def overlap(last_passage: str, candidate: str, language: str) -> float:
    """Share of the last passage's content words that the candidate takes up (0 = it drifted away)."""
    before = content_words(last_passage, language)
    if not before:
        return 1.0
    return len(before & content_words(candidate, language)) / len(before)


def judge(story_text: str, last_passage: str, candidate: str, language: str, *, complete: bool = True,
          max_sentences: int = 5) -> CandidateReport:
    """Every check on one candidate, and its score: complete and consistent first, then the one
    that stays closest to where the story stopped, with a penalty for copying and for length."""
    found = tuple(contradictions(story_text, candidate, language))
    copied = echo(story_text, candidate)
    shared = overlap(last_passage, candidate, language)
    count = sentence_count(candidate)
    notes = list(found)
    score = 0.0
    if not complete:
        score -= 2.0
        notes.append("incomplete")
    score -= 1.5 * len(found)
    if copied > ECHO_LIMIT:
        score -= 1.0
        notes.append(f"repeats the story ({copied:.0%} of its word sequences)")
    if not 1 <= count <= max_sentences:
        score -= 0.5
        notes.append(f"{count} sentences")
    if last_passage.strip() and shared == 0.0:
        score -= 0.5
        notes.append("shares no word with the last passage")
    score += min(shared, 0.5)  # taking up the scene helps, up to a point (copying it is not better)
    return CandidateReport(found, copied, shared, count, round(score, 3), tuple(notes))


def ranked(reports: Sequence[tuple[int, CandidateReport]]) -> list[int]:
    """Candidate ids best first; ties keep the order they were written in."""
    order = {cid: i for i, (cid, _) in enumerate(reports)}
    return [cid for cid, _ in sorted(reports, key=lambda item: (-item[1].score, order[item[0]]))]
