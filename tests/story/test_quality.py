"""bot.story.quality: contradicted colours and counts, echo of the story, overlap with the last
passage, the score of judge() and the order of ranked(), on real English and Russian sentences."""

from __future__ import annotations

import pytest

from bot.story.quality import (
    ECHO_LIMIT,
    CandidateReport,
    attributes,
    content_words,
    contradictions,
    echo,
    judge,
    overlap,
    ranked,
    words,
)

LANTERN = "The fox found a red lantern in the snow."


# --- attributes and contradictions ------------------------------------------------------------

def test_a_colour_the_story_gave_another_value_is_a_contradiction() -> None:
    assert contradictions("Mira lit the red lantern.", "The blue lantern glowed.", "en") == [
        "colour of 'lantern': blue here, red in the story"]
    # The same colour, a plural of the same noun, or a noun the story never coloured: nothing.
    assert contradictions("Mira lit the red lantern.", "The red lantern swung.", "en") == []
    assert contradictions("Mira lit three red lanterns.", "One red lantern went out.", "en") == []
    assert contradictions("Mira lit the red lantern.", "A blue bird sang.", "en") == []
    # Grey and gray are one colour.
    assert contradictions("A gray cat slept.", "The grey cat woke.", "en") == []


def test_a_colour_is_a_contradiction_only_when_the_story_never_gave_it() -> None:
    # The story called the door red and blue (two doors, or a painted one): blue is no contradiction.
    assert contradictions("The red door creaked. Later the blue door opened.", "The blue door slammed.", "en") == []
    assert contradictions("The red door creaked. Later the blue door opened.", "The green door slammed.", "en") == [
        "colour of 'door': green here, blue in the story"]


def test_a_count_the_story_gave_another_value_is_a_contradiction() -> None:
    assert contradictions("Three moons rose over the hills.", "Two moons hung low.", "en") == [
        "count of 'moon': 2 here, 3 in the story"]
    assert contradictions("Three moons rose over the hills.", "3 moons hung low.", "en") == []
    assert contradictions("Two men rowed the boat.", "Four men rowed on.", "en") == [
        "count of 'men': 4 here, 2 in the story"]  # an irregular plural is a counted noun too


def test_words_after_a_number_that_are_not_counted_nouns_are_no_count() -> None:
    # "one" is no count; a verb after a digit is not the counted noun; "ten" before a number word neither.
    assert attributes("One moon rose. At 5 went the bell.", "en") == {"colour": {}, "count": {}}
    assert attributes("Two black cats and 12 ships.", "en") == {
        "colour": {"cat": {"black"}}, "count": {"ship": {12}}}


def test_russian_colours_and_counts_match_across_cases() -> None:
    assert contradictions("Мира зажгла красный фонарь.", "Синий фонарь погас.", "ru") == [
        "colour of 'фонар': син here, красн in the story"]
    # Another case of the same adjective and noun is the same fact.
    assert contradictions("Мира зажгла красный фонарь.", "Свет красного фонаря дрожал.", "ru") == []
    assert contradictions("Над лесом взошли три луны.", "Две луны висели низко.", "ru") == [
        "count of 'луны': 2 here, 3 in the story"]
    assert contradictions("Над лесом взошли три луны.", "Все три луны светили ярко.", "ru") == []
    # Ё and е spell one colour.
    assert contradictions("На столе лежал зелёный шарф.", "Она взяла зеленый шарф.", "ru") == []


@pytest.mark.parametrize("story, candidate", [
    # "двор" (a yard), "семья" (a family), "двери" (doors) are not "two", "seven", "two".
    ("Двор замка был пуст.", "Три замка стояли на холмах."),
    ("Семья медведей спала в берлоге.", "Два медведя вышли из леса."),
    ("Он открыл двери дома.", "Три дома стояли у реки."),
    # "белка" (a squirrel) is not "white".
    ("Старая белка Тоша жила в дупле.", "Серая Тоша прыгнула на ветку."),
])
def test_russian_words_that_only_start_like_a_number_or_a_colour_are_neither(story: str, candidate: str) -> None:
    assert contradictions(story, candidate, "ru") == []


def test_russian_words_that_start_like_numbers_make_no_count() -> None:
    found = attributes("Во двор вышла собака. Трава росла у дома. Семья жила в лесу. Он открыл двери дома.", "ru")
    assert found == {"colour": {}, "count": {}}
    found = attributes("Белка сидела на ветке. Сердце билось.", "ru")
    assert found == {"colour": {}, "count": {}}
    # The numbers and colours themselves still count, in their cases.
    found = attributes("Двое детей нашли пять серых камней у трёх старых дубов.", "ru")
    assert found["count"] == {"детей": {2}, "серых": {5}, "стары": {3}}
    assert found["colour"] == {"камне": {"сер"}}


# --- echo and overlap -----------------------------------------------------------------------------

STORY = "Mira walked into the dark forest alone and listened to the owls."


def test_echo_is_the_share_of_word_sequences_copied_from_the_story() -> None:
    assert echo(STORY, STORY) == 1.0
    # 4 of its 9 five-word sequences are the story's.
    assert echo(STORY, "Mira walked into the dark forest alone and then she sang a song.") == pytest.approx(4 / 9)
    assert echo(STORY, "At dawn the old baker opened his shop and sold warm bread to everyone.") == 0.0
    # Too short to tell (under 6 five-grams): counts as new, even when copied.
    assert echo(STORY, "Mira walked into the dark forest alone.") == 0.0


def test_echo_in_russian() -> None:
    story = "Мира вошла в тёмный лес одна и долго слушала, как кричат совы."
    assert echo(story, story) == 1.0
    assert echo(story, "Утром старый пекарь открыл свою лавку и продал тёплый хлеб всем соседям.") == 0.0


def test_overlap_is_the_share_of_the_last_passages_content_words_taken_up() -> None:
    assert content_words("The fox found a lantern in the snow.", "en") == {"fox", "found", "lantern", "snow"}
    assert overlap("The fox found a lantern in the snow.", "The lantern glowed over the snow.", "en") == 0.5
    assert overlap("The fox found a lantern in the snow.", "Bankers met in Zurich.", "en") == 0.0
    assert overlap("", "Anything at all.", "en") == 1.0  # nothing to drift from
    assert overlap("Лиса нашла фонарь в снегу.", "Фонаря свет упал на снег. Лиса ушла.", "ru") == pytest.approx(2 / 4)


def test_words_keep_hyphens_and_apostrophes_and_lowercase() -> None:
    assert words("Mira's 3 owls! Жила-была лиса.") == ["mira's", "3", "owls", "жила-была", "лиса"]


# --- judge and ranked -------------------------------------------------------------------------------

def test_a_consistent_candidate_that_takes_up_the_scene_scores_best() -> None:
    report = judge(LANTERN, LANTERN, "The fox lifted the red lantern and walked home.", "en")
    assert report == CandidateReport((), 0.0, 0.6, 1, 0.5, ())
    assert not report.worth_redoing


def test_a_contradicting_candidate_is_penalised_and_worth_redoing() -> None:
    report = judge(LANTERN, LANTERN, "The fox lifted the blue lantern and walked home.", "en")
    assert report.contradictions == ("colour of 'lantern': blue here, red in the story",)
    assert report.score == -1.1 and report.overlap == 0.4
    assert report.notes == report.contradictions and report.worth_redoing


def test_a_copying_candidate_is_worth_redoing() -> None:
    report = judge(STORY, STORY, STORY, "en")
    assert report.echo == 1.0 > ECHO_LIMIT and report.worth_redoing
    assert report.notes == ("repeats the story (100% of its word sequences)",)
    assert report.score == pytest.approx(-1.0 + 0.5)


def test_drift_length_and_an_unfinished_candidate_are_noted_but_not_redone() -> None:
    drift = judge(LANTERN, LANTERN, "Bankers met in Zurich to talk about money.", "en")
    assert drift.notes == ("shares no word with the last passage",) and drift.score == -0.5
    assert not drift.worth_redoing
    long = judge(LANTERN, LANTERN, "The fox ran. It ran. It ran. It ran. It ran. It ran.", "en")
    assert long.sentences == 6 and long.notes == ("6 sentences",) and long.score == pytest.approx(-0.3)
    assert judge(LANTERN, LANTERN, "The fox ran. It ran.", "en", max_sentences=1).notes == ("2 sentences",)
    cut = judge(LANTERN, LANTERN, "The fox lifted the red lantern and", "en", complete=False)
    assert cut.notes[0] == "incomplete" and cut.score == pytest.approx(-2.0 + 0.5)
    assert not cut.worth_redoing


def test_judge_in_russian() -> None:
    story = "Лиса нашла красный фонарь в снегу."
    good = judge(story, story, "Лиса подняла красный фонарь и пошла домой.", "ru")
    bad = judge(story, story, "Лиса подняла синий фонарь и пошла домой.", "ru")
    assert good.contradictions == () and not good.worth_redoing
    assert bad.contradictions == ("colour of 'фонар': син here, красн in the story",) and bad.worth_redoing
    assert good.score > bad.score


def test_ranked_puts_the_best_first_and_keeps_ties_in_order() -> None:
    good = judge(LANTERN, LANTERN, "The fox lifted the red lantern and walked home.", "en")
    bad = judge(LANTERN, LANTERN, "The fox lifted the blue lantern and walked home.", "en")
    drift = judge(LANTERN, LANTERN, "Bankers met in Zurich to talk about money.", "en")
    assert ranked([(11, bad), (12, drift), (10, good)]) == [10, 12, 11]
    assert ranked([(7, drift), (3, drift), (5, good)]) == [5, 7, 3]
    assert ranked([]) == []
