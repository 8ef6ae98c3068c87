"""GenerationParams, seeds and the stop-string filter shared by every backend."""

from __future__ import annotations

import pytest

from bot.models.base import GenerationParams, StopFilter


def test_params_without_seed_get_a_fresh_one_each_time() -> None:
    params = GenerationParams()
    seeds = {params.with_seed().seed for _ in range(20)}
    assert None not in seeds
    assert len(seeds) > 15


def test_a_given_seed_is_kept() -> None:
    assert GenerationParams(seed=7).with_seed().seed == 7


def test_lists_become_tuples_so_params_stay_hashable() -> None:
    params = GenerationParams(stop=["\n\n"], banned_words=["dragon"])
    assert params.stop == ("\n\n",) and params.banned_words == ("dragon",)
    hash(params)


@pytest.mark.parametrize("bad", [{"max_new_tokens": 0}, {"top_p": 0}, {"temperature": -1}])
def test_impossible_sampling_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        GenerationParams(**bad)


def test_banned_word_variants_cover_space_and_case() -> None:
    variants = GenerationParams(banned_words=("Dragon",)).variants_of_banned_words()
    assert {"Dragon", " Dragon", "dragon", " dragon"} <= set(variants)


def test_stop_string_split_over_pieces_is_held_back_and_cut() -> None:
    stops = StopFilter(["\nUser:"])
    shown = [stops.feed(p) for p in ["Hello", " there", "\nUs", "er:", " more"]]
    assert "".join(shown) == "Hello there"
    assert stops.stopped


def test_partial_stop_that_does_not_complete_is_released() -> None:
    stops = StopFilter(["\nUser:"])
    shown = "".join(stops.feed(p) for p in ["a\nU", "nder the hill"]) + stops.flush()
    assert shown == "a\nUnder the hill"
    assert not stops.stopped


def test_earliest_of_several_stops_wins() -> None:
    stops = StopFilter(["END", "."])
    assert stops.feed("One. Two END") == "One"
