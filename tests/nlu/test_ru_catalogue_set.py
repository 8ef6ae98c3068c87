"""evals/nlu/ru_catalogue.json: written for the shipped catalogue, never copied from its examples."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig
from bot.nlu.datasets import OOS, load_utterances

ROOT = Path(__file__).parents[2]
SET = ROOT / "evals" / "nlu" / "ru_catalogue.json"
CATALOGUE = IntentCatalogue.load(ROOT / "intents")


def bare(text: str) -> str:
    """Lower case, ё as е, punctuation and emoji as spaces."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower().replace("ё", "е")).split())


def test_every_intent_with_russian_examples_is_tested_and_no_other_label_is_used():
    test = load_utterances(SET, "test")
    labels = Counter(r.label for r in test)
    # The noise intent's messages mean nothing: they are the set's `oos` (val), not a label of their own.
    russian = {i.name for i in CATALOGUE if i.texts("examples", "ru")} - {NluConfig().noise_intent}
    assert len(test) >= 300
    assert set(labels) == russian
    assert min(labels.values()) >= 10
    assert {r.label for r in load_utterances(SET, "val")} <= russian | {OOS}


def test_no_message_is_a_catalogue_example_and_the_splits_do_not_overlap():
    examples = {bare(e) for intent in CATALOGUE for e in intent.texts("examples")}
    test = [bare(r.text) for r in load_utterances(SET, "test")]
    val = [bare(r.text) for r in load_utterances(SET, "val")]
    assert not [t for t in test + val if t in examples]
    assert len(set(test)) == len(test) and not set(test) & set(val)


def test_the_messages_are_russian():
    cyrillic = re.compile(r"[а-яё]", re.IGNORECASE)
    assert all(cyrillic.search(r.text) for r in load_utterances(SET, "test"))
