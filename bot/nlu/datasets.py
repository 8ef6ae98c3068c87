"""Labelled utterances for evaluation and training: CSV (`text,label`) or CLINC150 JSON, and catalogues built from them.

Out-of-scope utterances carry the label `oos`. A catalogue for evaluation is built from a
training set (N examples per label, or all) or, zero-shot, from the label names alone.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError
from bot.nlu.catalogue import Intent, IntentCatalogue

OOS = "oos"


@dataclass(frozen=True)
class Utterance:
    text: str
    label: str


def load_utterances(path: Path, split: str = "test") -> list[Utterance]:
    """Read a CSV with `text,label` columns, or split `split` of a CLINC150-style JSON file.

    For CLINC150 (`data_full.json`), split "test" means `test` + `oos_test` (likewise "val",
    "train"); "test_in" / "oos_test" alone are also accepted.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no such data file")
    if path.suffix == ".json":
        return _load_clinc(path, split)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}: expected a CSV header with `text` and `label` columns")
        rows = [Utterance(row["text"].strip(), row["label"].strip()) for row in reader if row["text"].strip()]
    if not rows:
        raise ConfigError(f"{path}: no utterances")
    return rows


def _load_clinc(path: Path, split: str) -> list[Utterance]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read JSON: {exc}") from exc
    if split.endswith("_in"):
        parts = [split[: -len("_in")]]
    elif split in data and not split.startswith("oos_") and f"oos_{split}" in data:
        parts = [split, f"oos_{split}"]
    else:
        parts = [split]
    rows: list[Utterance] = []
    for part in parts:
        if part not in data:
            raise ConfigError(f"{path}: no split {part!r} (has: {', '.join(sorted(data))})")
        rows.extend(Utterance(str(text), str(label)) for text, label in data[part])
    return rows


def sample_shots(rows: list[Utterance], shots: int | None, seed: int = 0) -> list[Utterance]:
    """`shots` random utterances per in-scope label (all when None); out-of-scope rows dropped."""
    by_label: dict[str, list[Utterance]] = defaultdict(list)
    for row in rows:
        if row.label != OOS:
            by_label[row.label].append(row)
    rng = random.Random(seed)
    picked: list[Utterance] = []
    for label in sorted(by_label):
        group = by_label[label]
        picked.extend(group if shots is None or shots >= len(group) else rng.sample(group, shots))
    return picked


def label_description(label: str) -> str:
    """The zero-shot description of a bare label name: "book_flight" -> "book flight"."""
    return label.replace("_", " ").replace("-", " ").strip()


def catalogue_from_data(labels: list[str], train: list[Utterance] | None = None) -> IntentCatalogue:
    """A catalogue with one intent per label: description from the label name, examples from `train`."""
    examples: dict[str, list[str]] = defaultdict(list)
    for row in train or []:
        examples[row.label].append(row.text)
    intents = []
    for label in labels:
        if label == OOS:
            continue
        intents.append(Intent(name=intent_name(label), descriptions={"en": [label_description(label)]},
                              examples={"en": examples.get(label, [])} if examples.get(label) else {}))
    return IntentCatalogue(intents)


def intent_name(label: str) -> str:
    """The catalogue name `catalogue_from_data` gives a label (identity for CLINC150 labels)."""
    name = "".join(c if c.isalnum() else "_" for c in label.lower())
    return name if name[:1].isalpha() else f"i_{name}"
