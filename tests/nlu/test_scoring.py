"""IntentScorer: examples and descriptions blended, zero-shot intents ranked beside few-shot ones."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu.scoring import IntentScorer, calibrate_center


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_top_k_mean_of_examples_decides_between_intents():
    vectors = np.stack([unit(1, 0, 0), unit(1, 0.2, 0), unit(0, 1, 0), unit(0.9, 0.1, 0)])
    scorer = IntentScorer(["a", "b"], vectors, np.array([0, 0, 1, 1]), np.zeros(4, bool), top_k=2)
    scores = scorer.scores(unit(1, 0, 0))
    assert scores.shape == (1, 2)
    # a: both examples near the query; b: one near, one far -> mean of its top 2 is lower
    assert scores[0, 0] > scores[0, 1]
    expected_b = (unit(0, 1, 0) @ unit(1, 0, 0) + unit(0.9, 0.1, 0) @ unit(1, 0, 0)) / 2
    assert scores[0, 1] == pytest.approx(expected_b, abs=1e-5)


def test_intent_with_only_a_description_is_scored_by_it():
    vectors = np.stack([unit(1, 0, 0), unit(0, 0, 1)])
    scorer = IntentScorer(["few", "zero"], vectors, np.array([0, 1]), np.array([False, True]))
    names, conf = scorer.predict(np.stack([unit(0, 0.1, 1)]), threshold=0.0)
    assert names == ["zero"]


def test_description_weight_blends_description_into_example_score():
    vectors = np.stack([unit(1, 0), unit(0, 1)])
    scorer = IntentScorer(["x"], vectors, np.array([0, 0]), np.array([False, True]), description_weight=0.25)
    assert scorer.scores(unit(0, 1))[0, 0] == pytest.approx(0.25)


def test_below_center_is_out_of_scope():
    vectors = np.stack([unit(1, 0, 0)])
    scorer = IntentScorer(["a"], vectors, np.array([0]), np.array([False]), center=0.8, scale=0.05)
    names, conf = scorer.predict(np.stack([unit(1, 0.1, 0), unit(1, 1, 0)]))
    assert names == ["a", None]
    assert conf[0] > 0.5 > conf[1]


def test_prototypes_shift_scores_with_their_weight():
    vectors = np.stack([unit(1, 0), unit(0, 1)])
    prototypes = np.stack([unit(0, 1), unit(1, 0)])  # swapped on purpose
    scorer = IntentScorer(["a", "b"], vectors, np.array([0, 1]), np.zeros(2, bool), prototypes=prototypes,
                          prototype_weight=0.75)
    assert scorer.scores(unit(1, 0))[0].argmax() == 1


def test_intent_without_texts_is_rejected():
    with pytest.raises(ValueError, match="neither"):
        IntentScorer(["a", "b"], np.stack([unit(1, 0)]), np.array([0]), np.array([False]))


def test_calibrate_center_separates_in_scope_from_out_of_scope():
    top = np.array([0.9, 0.8, 0.75, 0.3, 0.2, 0.5])
    in_scope = np.array([True, True, True, False, False, False])
    correct = in_scope.copy()
    center = calibrate_center(top, correct, in_scope)
    assert 0.5 < center <= 0.75
    strict = calibrate_center(top, correct, in_scope, min_accuracy=1.0)
    assert strict == pytest.approx(0.75)
