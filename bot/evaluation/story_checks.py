"""The automatic checks of one story continuation: each a small pure function of the text (and of
the opening it continues), shared by `tandem story eval` and any test that judges a passage.

ending, length (2-5 sentences), quotes, language (script, and no word mixing two alphabets),
echo (4-grams copied from the opening), refusal (the model talking as an assistant), drift (no
word, name or fact of the opening's end kept), facts (the item's facts mentioned) and
contradiction (a stated colour changed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.evaluation.story_set import StatedColour, StoryOpening, colour_family
from bot.story.polish import ends_sentence, script_language

CHECKS = ("ending", "length", "quotes", "language", "echo", "refusal", "drift", "facts", "contradiction")
# A passage of two to five sentences is what Tandem's prompt asks for.
MIN_SENTENCES, MAX_SENTENCES = 2, 5
# Share of the continuation's word 4-grams found in the opening above which it is a copy.
MAX_ECHO = 0.3
# Share of the item's facts a continuation must mention.
MIN_FACTS = 0.5

# --- words and sentences ---------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_TOKEN = re.compile(r"\w+", re.UNICODE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_END_MARK = re.compile(r"[.!?…]+[\"'»”’)\]]*")
_WORD_BEFORE = re.compile(r"([^\W\d_]+(?:\.[^\W\d_]+)*)$")
_NEXT_LETTER = re.compile(r"[\s\"'«“„(\[—–-]*(\w)")
# Words a full stop follows without ending the sentence ("Mr. Hollis", "ул. Садовая"), folded.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "prof", "jr", "sr", "vs", "etc", "e.g", "i.e", "mt",
                           "г", "гг", "ул", "им", "т.е", "т.д", "т.п", "др", "пр", "см", "проф", "тов"})
# Trailing letters an inflection replaces; one is cut before comparing: a Russian vowel, ь or й
# ("Нина" ~ "Нину"), an English plural s ("tiles" ~ "tile"). English keeps its vowels, so "Mara" is not "Mars".
_CUTTABLE_RU = set("аеиоуыэюяьй")
# Letters an inflection may add after that stem ("фонар" -> "фонарём", "lantern" -> "lanterns").
MAX_ENDING = 3


def fold(word: str) -> str:
    return word.casefold().replace("ё", "е")


def split_sentences(text: str) -> list[str]:
    """The sentences of a text. A sentence ends at . ! ? … (and any closing quotes or brackets)
    before a capital letter, a digit or the end, or at a line break; not after an abbreviation or
    an initial ("Mr. Hollis", "J. Smith"), and not before the lowercase words of a dialogue tag
    ("Wait!" she said; — Стой! — крикнула она)."""
    sentences = []
    for line in text.splitlines():
        start = 0
        for mark in _END_MARK.finditer(line):
            after = line[mark.end():]
            if after and not after[0].isspace():
                continue  # "3.5", "e.g.", "?!»" inside a word
            if mark.group() == ".":
                before = _WORD_BEFORE.search(line, 0, mark.start())
                word = before.group(1) if before else ""
                if fold(word) in ABBREVIATIONS or (len(word) == 1 and word.isupper() and word != "I"):
                    continue
            following = _NEXT_LETTER.match(after)
            if following is not None and following.group(1).islower():
                continue
            sentences.append(line[start:mark.end()].strip())
            start = mark.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if _TOKEN.search(s)]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def _stem(word: str) -> str:
    word = fold(word)
    cuttable = _CUTTABLE_RU if _CYRILLIC.match(word) else {"s"}
    return word[:-1] if len(word) > 3 and word[-1] in cuttable else word


def _same_word(stem: str, word: str) -> bool:
    """Whether `word` is a form of the word whose stem is `stem`."""
    folded = fold(word)
    return folded.startswith(stem) and len(folded) - len(stem) <= MAX_ENDING


def mentions(fact: str, text: str) -> bool:
    """Whether every word of `fact` appears in `text`, inflected or not; a capitalised word (a
    name: "Vera", "Мира") only as a capitalised word of the text, so "мир" is not "Мира"."""
    words = _WORD.findall(text)
    for part in _WORD.findall(fact):
        stem, is_name = _stem(part), part[0].isupper()
        if not any(_same_word(stem, w) and (w[0].isupper() or not is_name) for w in words):
            return False
    return True


# --- the checks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool | None  # None: the check does not apply (the item lists no facts)
    detail: str = ""
    score: float | None = None  # the measured share, for echo and facts


def check_ending(text: str) -> CheckResult:
    passed = ends_sentence(text.strip())
    return CheckResult("ending", passed, "" if passed else f"ends mid-sentence: …{text.strip()[-40:]!r}")


def check_length(text: str) -> CheckResult:
    count = count_sentences(text)
    passed = MIN_SENTENCES <= count <= MAX_SENTENCES
    return CheckResult("length", passed, "" if passed else f"{count} sentences, not {MIN_SENTENCES}–{MAX_SENTENCES}")


def unbalanced_quotes(text: str) -> list[str]:
    """The kinds of double quotes left open or closed twice: straight ("), curly (“”, or the
    Russian inner „“) and guillemets («»)."""
    problems = []
    if text.count('"') % 2:
        problems.append('"')
    pairs = [("«", "»"), ("„", "“")] if "„" in text else [("«", "»"), ("“", "”")]
    for opener, closer in pairs:
        depth = 0
        for char in text:
            depth += (char == opener) - (char == closer)
            if depth < 0:
                break
        if depth != 0:
            problems.append(opener + closer)
    return problems


def check_quotes(text: str) -> CheckResult:
    problems = unbalanced_quotes(text)
    return CheckResult("quotes", not problems, f"unbalanced {' '.join(problems)}" if problems else "")


def mixed_script_words(text: str) -> list[str]:
    """Words made of Latin and Cyrillic letters at once ("мysterный"): a tokenizer's mix-up."""
    return [w for w in _TOKEN.findall(text) if _LATIN.search(w) and _CYRILLIC.search(w)]


def check_language(text: str, language: str) -> CheckResult:
    written_in = script_language(text)
    mixed = mixed_script_words(text)
    if written_in != language:
        return CheckResult("language", False, f"written in {written_in or 'too few letters to tell'}")
    if mixed:
        return CheckResult("language", False, f"mixed-script words {', '.join(mixed[:3])}")
    return CheckResult("language", True)


def _ngrams(text: str, n: int = 4) -> list[tuple[str, ...]]:
    words = [fold(w) for w in _TOKEN.findall(text)]
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def echo_share(text: str, opening: str) -> float:
    """Share of the text's word 4-grams that are already in the opening (0 for a text under 4 words)."""
    grams = _ngrams(text)
    if not grams:
        return 0.0
    known = set(_ngrams(opening))
    return sum(gram in known for gram in grams) / len(grams)


def check_echo(text: str, opening: str) -> CheckResult:
    share = echo_share(text, opening)
    return CheckResult("echo", share <= MAX_ECHO, f"{share:.0%} of its 4-grams are the opening's"
                       if share > MAX_ECHO else "", share)


# The model answering as an assistant instead of writing the story (folded text, ё as е). Phrases
# a character could say ("I can't") count only with what an assistant goes on with.
ASSISTANT_PHRASES = tuple(re.compile(p) for p in (
    r"\bas an ai\b", r"\bas an? (?:large )?(?:language model|ai model|assistant)\b",
    r"\bi(?:'m|’m| am) (?:sorry|unable|not able)\b",
    r"\bi (?:can't|can’t|cannot|can not|won't) (?:help|continue|write|assist|create|provide|comply|generate)\b",
    r"\b(?:sure|certainly|of course|absolutely)[!,.]?\s+here(?:'s|’s| is| are)\b",
    r"\bhere(?:'s|’s| is) (?:a|the|my|your) (?:possible )?(?:continuation|next part|next passage|story)\b",
    r"\bi hope you enjoy", r"\blet me know if\b", r"\bfeel free to\b", r"^\W*(?:continuation|next passage)\s*:",
    r"\bкак (?:ии|искусственный интеллект|языковая модель|ассистент)\b",
    r"\b(?:конечно|разумеется|хорошо)[!,.]?\s+вот\b", r"\bвот (?:продолжение|следующая часть|ваша история)\b",
    r"\bпродолжение(?: истории)?\s*:", r"\bя не могу (?:продолжить|написать|помочь|выполнить|создать)\b",
    r"\bизвините, но\b", r"\bнадеюсь, (?:вам|тебе) (?:понравится|понравилось)", r"\bдайте знать\b",
))


def assistant_phrases(text: str) -> list[str]:
    folded = fold(text)
    return [m.group() for p in ASSISTANT_PHRASES if (m := p.search(folded))]


def check_refusal(text: str) -> CheckResult:
    found = assistant_phrases(text)
    return CheckResult("refusal", not found, f"talks as an assistant: {', '.join(map(repr, found[:2]))}"
                       if found else "")


STOPWORDS = frozenset(fold(w) for w in (
    "about above after again against also always among another around away back because been before behind "
    "being below beside between both came come could does doing done down during each either even ever every "
    "from front gave give goes going gone have here herself himself however into itself just knew know last "
    "later like little looked made make many might more most much must myself near never next nothing once "
    "only onto other over said same seemed should since some something someone soon still such sure take than "
    "that their them then there these they thing this those though through told took toward under until upon "
    "very wanted well went were what when where whether which while whom whose will with within without would "
    "your years asked turned nobody somebody anybody everybody someone anyone everyone something anything "
    "everything nowhere somewhere everywhere "
    "будто больше будет будут была были было быть вдруг весь всегда всего всех говорил говорила даже если есть "
    "затем здесь знала знал когда который которая которое которые которых котором которой тогда потом потому "
    "почему теперь только тоже также очень может можно нужно надо себя себе свой своя свое свои своих своей "
    "сказал сказала сказали этот этого этой этом этих этим туда сюда сейчас после перед через между около "
    "почти снова опять словно него нему ними она они оно чтобы хотя пока лишь разве ведь какой какая какое "
    "какие такой такая такое такие один одна одно одни самый самая самое просто наконец ничего никто никогда "
    "каждый каждая каждое стал стала стало стали ответил ответила спросил спросила никого ничто нигде всюду везде"
).split())


def drift_anchors(item: StoryOpening) -> list[str]:
    """What a continuation of the scene is expected to touch: the content words (4+ letters, no
    stopwords) of the opening's last two sentences, the names anywhere in it (capitalised words
    not starting a sentence), and the item's facts."""
    sentences = split_sentences(item.opening)
    # Lower-cased, so a word that starts a sentence is not taken for a name (see `mentions`).
    anchors = [w.lower() for s in sentences[-2:] for w in _WORD.findall(s)
               if len(w) >= 4 and fold(w) not in STOPWORDS]
    for sentence in sentences:
        anchors += [w for w in _WORD.findall(sentence)[1:]
                    if w[0].isupper() and len(w) >= 3 and fold(w) not in STOPWORDS | ABBREVIATIONS]
    return list(dict.fromkeys([*anchors, *item.facts]))


def check_drift(text: str, item: StoryOpening) -> CheckResult:
    """Drifted: the text mentions none of the opening's anchors (`drift_anchors`) at all."""
    kept = [anchor for anchor in drift_anchors(item) if mentions(anchor, text)]
    return CheckResult("drift", bool(kept), "" if kept else "shares no word, name or fact with the opening's end")


def check_facts(text: str, facts: Sequence[str]) -> CheckResult:
    if not facts:
        return CheckResult("facts", None)
    kept = [fact for fact in facts if mentions(fact, text)]
    share = len(kept) / len(facts)
    missing = [fact for fact in facts if fact not in kept]
    return CheckResult("facts", share >= MIN_FACTS, f"keeps {len(kept)}/{len(facts)}, not {', '.join(missing)}"
                       if share < MIN_FACTS else "", share)


# Words between a thing and its colour when the colour is said after it ("the lantern was blue").
LINKING_WORDS = frozenset(fold(w) for w in (
    "is was were are became seemed looked turned glowed shone burned gleamed now still all "
    "был была было были стал стала стало стали казался казалась казалось оказался оказалась теперь весь вся "
    "горел горела светился светилась"
).split())


def contradicting_colours(text: str, stated: StatedColour) -> list[str]:
    """"blue lantern" where the opening said "red lantern": in one sentence, another colour
    family's word one or two words before the thing, right after it, or after it and a linking
    word ("the lantern was blue"); "the box by the blue door" says nothing about the box."""
    stem, found = _stem(stated.thing), []
    for sentence in split_sentences(text):
        words = _WORD.findall(sentence)
        for i, word in enumerate(words):
            if _same_word(stem, word):
                after = words[i + 1:i + 3]
                if after and fold(after[0]) not in LINKING_WORDS:
                    after = after[:1]
                for near in (*words[max(0, i - 2):i], *after):
                    family = colour_family(near)
                    if family is not None and family != stated.family:
                        found.append(f"{near} {word}")
    return found


def check_contradiction(text: str, stated: Sequence[StatedColour]) -> CheckResult:
    if not stated:
        return CheckResult("contradiction", None)
    found = [f"{clash} (stated: {s.colour} {s.thing})" for s in stated for clash in contradicting_colours(text, s)]
    return CheckResult("contradiction", not found, "; ".join(found))


def check_text(item: StoryOpening, text: str) -> list[CheckResult]:
    """Every check of one continuation of `item`, in CHECKS order; with no text every check that
    applies fails."""
    if not text.strip():
        return [CheckResult(name, None if (name == "facts" and not item.facts)
                            or (name == "contradiction" and not item.facts_exact) else False, "no text")
                for name in CHECKS]
    return [check_ending(text), check_length(text), check_quotes(text), check_language(text, item.language),
            check_echo(text, item.opening), check_refusal(text), check_drift(text, item),
            check_facts(text, item.facts), check_contradiction(text, item.stated_colours)]
