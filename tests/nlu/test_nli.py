"""NliIntentClassifier plumbing, on a tiny random NLI model built by the test (no NLI model ships on PyPI)."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations
from bot.nlu.config import NluConfig
from bot.nlu.nli import NliIntentClassifier

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-nli")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "this", "example", "is", "the", "user", "wants",
             "to", "write", "a", "story", "weather", "asks", "about", "forecast", "play", "some", "music", "song"]
    (folder / "vocab.txt").write_text("\n".join(words), encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64,
                        id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                        label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


async def test_nli_backend_ranks_every_intent(catalogue, tiny_nli):
    classifier = NliIntentClassifier(catalogue, NluConfig(backend="nli", nli_model=str(tiny_nli), intent_threshold=0.0))
    annotations = Annotations()
    await classifier.annotate("play some music", annotations)
    await classifier.close()
    assert sorted(g.name for g in annotations.ranking) == ["music", "story", "weather"]
    assert sum(g.confidence for g in annotations.ranking) == pytest.approx(1.0, abs=1e-4)
    assert annotations.intent is not None and annotations.intent.source == "nli"


async def test_nli_threshold_keeps_unsure_guesses_out(catalogue, tiny_nli):
    classifier = NliIntentClassifier(catalogue, NluConfig(backend="nli", nli_model=str(tiny_nli), intent_threshold=0.99))
    annotations = Annotations()
    await classifier.annotate("write a story", annotations)
    await classifier.close()
    assert annotations.intent is None and len(annotations.ranking) == 3
