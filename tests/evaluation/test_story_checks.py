"""The checks of one story continuation, each on hand-written texts that pass and that fail."""

from __future__ import annotations

import pytest

from bot.evaluation.story_checks import (
    CHECKS,
    assistant_phrases,
    check_contradiction,
    check_drift,
    check_echo,
    check_ending,
    check_facts,
    check_language,
    check_length,
    check_quotes,
    check_refusal,
    check_text,
    count_sentences,
    echo_share,
    mentions,
    mixed_script_words,
    split_sentences,
    unbalanced_quotes,
)
from bot.evaluation.story_set import StoryOpening, parse_stated_colour

LANTERN = StoryOpening(
    id="lantern", language="en",
    opening=("The ferry left at six, and Inspector Mara Quill was the only passenger. She saw a red lantern "
             "in the window of the lighthouse. The ferryman pretended not to see it."),
    facts=("Mara", "lantern", "ferryman"), facts_exact=("red lantern",),
)
SHOP = StoryOpening(id="shop", language="ru", opening="Бабушка Нина пекла пирожки. В дверь позвонил мальчик.",
                    facts=("Нина", "пирожки", "мальчик"))


@pytest.mark.parametrize(("text", "sentences"), [
    ("The door opened. Nobody was there.", 2),
    ('"Wait!" she said. "Who is it?" he asked.', 2),
    ("Mr. Hollis and Dr. Marsh met J. R. Finch at St. Mary's. They talked.", 2),
    ("It cost 3.50 dollars… She paid anyway!", 2),
    ("— Стой! — крикнула она. — Кто там? — Никто.", 3),
    ("Он жил на ул. Садовой, т.е. рядом. Там было тихо", 2),
    ("First line\nsecond line", 2),
    ("", 0),
])
def test_sentences_are_counted_at_their_ends(text: str, sentences: int) -> None:
    assert count_sentences(text) == sentences, split_sentences(text)


def test_ending_passes_at_a_sentence_boundary_only() -> None:
    assert check_ending("She ran.").passed and check_ending('"Run!"').passed and check_ending("Он ушёл…»").passed
    failed = check_ending("She ran toward the")
    assert not failed.passed and "toward the" in failed.detail


def test_length_is_two_to_five_sentences() -> None:
    assert check_length("One. Two.").passed and check_length("One. Two. Three. Four. Five.").passed
    assert not check_length("Only one sentence here.").passed
    too_long = check_length("One. Two. Three. Four. Five. Six.")
    assert not too_long.passed and too_long.detail == "6 sentences, not 2–5"


@pytest.mark.parametrize("text", ['"Hi," she said. "Bye."', "«Привет», — сказал он.", "“Yes,” he said.",
                                  "«Он сказал „нет“», — вспомнила она.", "No quotes at all."])
def test_balanced_quotes_pass(text: str) -> None:
    assert check_quotes(text).passed


@pytest.mark.parametrize(("text", "kind"), [('"Hi, she said.', '"'), ("«Привет, — сказал он.", "«»"),
                                            ("“Yes, he said.", "“”"), ("Yes,” he said. “No", "“”")])
def test_unbalanced_quotes_fail(text: str, kind: str) -> None:
    assert kind in unbalanced_quotes(text)
    assert not check_quotes(text).passed


def test_language_is_the_script_without_mixed_words() -> None:
    assert check_language("The fox ran home through the snow.", "en").passed
    assert check_language("Лиса побежала домой по снегу.", "ru").passed
    assert check_language("Лиса побежала домой по снегу.", "en").detail == "written in ru"
    assert check_language("Ok.", "en").detail == "written in too few letters to tell"
    mixed = "Это был очень мysterный вечер у реки."
    assert mixed_script_words(mixed) == ["мysterный"]
    assert not check_language(mixed, "ru").passed
    assert mixed_script_words("Он открыл iPhone и позвонил.") == []


def test_echo_is_the_share_of_4grams_from_the_opening() -> None:
    opening = "The ferry left at six and nobody was on board."
    assert echo_share("The ferry left at six and nobody was on board.", opening) == 1.0
    assert echo_share("A gull cried twice over the water.", opening) == 0.0
    assert echo_share("Hi there.", opening) == 0.0
    assert check_echo("A gull cried twice. The ferry left at six, and the rain began.", opening).passed
    copied = check_echo("The ferry left at six and nobody was there.", opening)
    assert not copied.passed and copied.score > 0.3


@pytest.mark.parametrize("text", [
    "Sure! Here's a continuation of the story: Mara looked up.", "As an AI, I cannot continue this story.",
    "I'm sorry, but I can't help with that.", "Mara left. I hope you enjoyed this story!",
    "Конечно! Вот продолжение истории: Нина открыла дверь.", "Я не могу продолжить эту историю.",
    "Continuation: the lantern went out.",
])
def test_refusals_and_assistant_talk_are_found(text: str) -> None:
    assert assistant_phrases(text)
    assert not check_refusal(text).passed


@pytest.mark.parametrize("text", [
    '"I can\'t go back," Mara said. "Not tonight."', "— Я не могу, — прошептала Нина.",
    "Sure enough, the lantern was gone by morning.", "Here is the pier where the ferry waited.",
])
def test_characters_may_say_what_an_assistant_says(text: str) -> None:
    assert check_refusal(text).passed


def test_mentions_find_inflected_forms_and_keep_names_capitalised() -> None:
    assert mentions("шкатулка", "Она открыла шкатулку.") and mentions("Нина", "Нину никто не ждал.")
    assert mentions("lantern", "Two lanterns swung.") and mentions("жар-птица", "Жар-птицу видели все.")
    assert not mentions("Мира", "Весь мир спал.")
    assert not mentions("lantern", "The lane was empty.")


def test_drift_is_no_word_name_or_fact_of_the_openings_end() -> None:
    assert check_drift("The ferryman coughed and looked away.", LANTERN).passed
    assert check_drift("Quill checked her watch.", LANTERN).passed  # a name from the first sentence
    drifted = check_drift("Meanwhile, on Mars, a robot baked a cake for its friends.", LANTERN)
    assert not drifted.passed and "shares no word" in drifted.detail
    # "Pretended" starts no sentence of the continuation: words of the opening's end count in any case.
    assert check_drift("Everyone Pretended it was fine.", LANTERN).passed


def test_facts_are_the_share_mentioned() -> None:
    kept = check_facts("Mara lifted the lantern; the ferryman swore.", LANTERN.facts)
    assert kept.passed and kept.score == 1.0
    half = check_facts("Mara waited by the rail. The sea was grey.", LANTERN.facts)
    assert not half.passed and half.score == pytest.approx(1 / 3) and "not lantern, ferryman" in half.detail
    assert check_facts("Нина вынесла мальчику пирожок.", SHOP.facts).passed  # Нина, мальчик; пирожок is not пирожки
    assert check_facts("Anything.", ()).passed is None


def test_contradiction_is_a_stated_thing_in_another_colour() -> None:
    stated = [parse_stated_colour("red lantern")]
    assert check_contradiction("The red lantern flickered. A blue boat passed.", stated).passed
    assert check_contradiction("The crimson lantern flickered.", stated).passed  # the same family
    for text in ("The blue lantern flickered.", "By then the lantern was green.", "Both lanterns glowed white."):
        assert not check_contradiction(text, stated).passed, text
    shown = check_contradiction("The blue lantern flickered.", stated)
    assert shown.detail == "blue lantern (stated: red lantern)"
    box = [parse_stated_colour("красная шкатулка")]
    assert not check_contradiction("Она открыла синюю шкатулку.", box).passed
    assert not check_contradiction("Шкатулка была синей.", box).passed
    assert check_contradiction("Она открыла красную шкатулку у синего окна.", box).passed
    assert check_contradiction("Anything.", []).passed is None


def test_every_check_of_a_text_in_order_and_no_text_fails_them_all() -> None:
    good = check_text(LANTERN, "Mara raised the red lantern. The ferryman turned the boat around.")
    assert [c.name for c in good] == list(CHECKS) and all(c.passed for c in good)
    empty = check_text(SHOP, "  ")
    assert {c.name: c.passed for c in empty} == {**dict.fromkeys(CHECKS, False), "contradiction": None}
    assert {c.detail for c in empty} == {"no text"}
