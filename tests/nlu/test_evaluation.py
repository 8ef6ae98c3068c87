"""Datasets (CSV, CLINC150 JSON) and the evaluation figures, with the fake encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.nlu.classifier import IntentModel
from bot.nlu.config import NluConfig
from bot.nlu.datasets import OOS, Utterance, catalogue_from_data, load_utterances, sample_shots
from bot.nlu.evaluation import evaluate, format_report

SLICE = Path(__file__).parents[1] / "fixtures" / "clinc_slice.json"


def test_clinc_split_includes_its_out_of_scope_part():
    test = load_utterances(SLICE, "test")
    assert len(test) == 24 + 6 and sum(r.label == OOS for r in test) == 6
    assert all(r.label != OOS for r in load_utterances(SLICE, "test_in"))
    with pytest.raises(ConfigError, match="no split"):
        load_utterances(SLICE, "nope")


def test_csv_needs_text_and_label_columns(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text('text,label\n"hi, there",greet\nbye,oos\n', encoding="utf-8")
    assert load_utterances(good) == [Utterance("hi, there", "greet"), Utterance("bye", "oos")]
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,intent\nhi,greet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="text"):
        load_utterances(bad)


def test_shots_per_label_are_reproducible_and_drop_oos():
    train = load_utterances(SLICE, "train")
    picked = sample_shots(train, 3, seed=1)
    assert len(picked) == 6 * 3 and all(r.label != OOS for r in picked)
    assert picked == sample_shots(train, 3, seed=1) != sample_shots(train, 3, seed=2)


def test_zero_shot_catalogue_describes_intents_by_label_name():
    catalogue = catalogue_from_data(["book_flight", "oos", "timer"])
    assert catalogue.names == ["book_flight", "timer"]
    assert catalogue.intents["book_flight"].texts("descriptions") == ["book flight"]
    assert catalogue.intents["book_flight"].texts("examples") == []


def test_evaluate_counts_oos_and_errors(fake_encoder):
    train = [Utterance("weather today", "weather"), Utterance("set a timer", "timer")]
    test = [Utterance("weather tomorrow", "weather"), Utterance("timer for pasta", "timer"),
            Utterance("weather timer", "timer"), Utterance("quantum physics", OOS)]
    catalogue = catalogue_from_data(["weather", "timer"], train)
    model = IntentModel.load(catalogue, NluConfig(similarity_center=0.3), None, fake_encoder)
    report = evaluate(model, test, name="fake", latency_sample=4)
    assert report.n_in_scope == 3 and report.n_oos == 1
    assert report.oos_recall == 1.0
    assert report.in_scope_accuracy == pytest.approx(2 / 3)  # "weather timer" goes to weather
    assert report.errors["timer"]["predicted"] == {"weather": 1}
    assert report.latency_p50_ms > 0 and report.batched_per_s > 0
    text = format_report([report])
    assert "in-scope accuracy" in text and "timer->weather x1" in text


def test_calibration_on_val_moves_the_center(fake_encoder):
    train = [Utterance("weather today", "weather"), Utterance("set a timer", "timer")]
    val = [Utterance("weather now", "weather"), Utterance("a timer", "timer"), Utterance("quantum physics", OOS)]
    model = IntentModel.load(catalogue_from_data(["weather", "timer"], train), NluConfig(similarity_center=0.99),
                             None, fake_encoder)
    report = evaluate(model, val, val=val, latency_sample=1)
    assert report.calibrated_on == "val" and report.center < 0.99
    assert report.in_scope_accuracy == 1.0 and report.oos_recall == 1.0
