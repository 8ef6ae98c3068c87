"""evaluate_cascade and `tandem nlu cascade`: accuracy and what routed each message, with the fake encoder."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.nlu import classifier as classifier_module
from bot.nlu import pipeline
from bot.nlu.cascade import FALLBACK, evaluate_cascade, format_cascade
from bot.nlu.cli import nlu
from bot.nlu.config import NluConfig
from bot.nlu.datasets import OOS, Utterance

CONFIG = NluConfig(language=False, sentiment=False, offensive=False, similarity_center=0.15, batch_wait_ms=0)
ROWS = [
    Utterance("/story", "story"),  # pinned by the command rule
    Utterance("what will the weather be tomorrow", "weather"),  # the classifier
    Utterance("quantum chromodynamics lecture notes", OOS),  # nothing claims it: right
    Utterance("weather forecast please", "story"),  # mislabelled on purpose: one error
]


@pytest.fixture
def fake_models(monkeypatch, fake_encoder):
    monkeypatch.setattr(pipeline, "_missing", lambda modules: [])
    monkeypatch.setattr(classifier_module, "load_encoder", lambda spec, threads=1: fake_encoder)
    return fake_encoder


async def test_the_report_counts_what_routed_each_message(catalogue, tmp_path, fake_models):
    report = await evaluate_cascade(CONFIG, catalogue, tmp_path, ROWS)
    assert report.n == 4 and report.accuracy == pytest.approx(0.75)
    assert report.routed_by["rules"] == {"share": 0.25, "n": 1, "accuracy": 1.0}
    assert report.routed_by["embedding"]["n"] == 2 and report.routed_by["embedding"]["accuracy"] == 0.5
    assert report.routed_by[FALLBACK] == {"share": 0.25, "n": 1, "accuracy": 1.0}
    # The classifier's own first choice is asked of the rule-pinned message too: 2 of 3 in-scope rows.
    assert report.classifier_top1 == pytest.approx(2 / 3)
    assert report.errors == [{"text": "weather forecast please", "label": "story", "predicted": "weather",
                              "source": "embedding"}]
    assert "routed by rules" in format_cascade([report])


def test_cascade_command_writes_the_figures(catalogue, tmp_path, fake_models, monkeypatch):
    import bot.nlu.catalogue as catalogue_module

    monkeypatch.setattr(catalogue_module.IntentCatalogue, "load", classmethod(lambda cls, path: catalogue))
    data = tmp_path / "set.json"
    data.write_text(json.dumps({"test": [[r.text, r.label] for r in ROWS]}), encoding="utf-8")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(nlu, ["cascade", "--test", str(data), "--intents", str(tmp_path), "--data-dir",
                                      str(tmp_path), "--language-encoder", "none", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["n"] == 4 and set(report["routed_by"]) >= {"rules", FALLBACK}
    assert "by language {}" in result.output


def test_cascade_command_rejects_a_malformed_language_encoder(tmp_path):
    data = tmp_path / "set.csv"
    data.write_text("text,label\nhi,greeting\n", encoding="utf-8")
    result = CliRunner().invoke(nlu, ["cascade", "--test", str(data), "--data-dir", str(tmp_path),
                                      "--language-encoder", "e5"])
    assert result.exit_code != 0 and "LANG=ENCODER" in result.output
