"""Evaluation of the whole NLU cascade as the bot runs it (language, rules, classifier, fuzzy, chat act) on
labelled messages: top-1 accuracy, which annotator routed each message, and per-message latency.

`tandem nlu eval` measures a classifier alone on a catalogue built from data; this measures the shipped
catalogue through `build_annotators`, so a rule that pins a message and the fallback that gets what nothing
claimed both count. A row labelled `oos` is right when nothing claims it (the fallback answers).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.annotations import Annotations, Annotator, close_annotators, start_annotators
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig
from bot.nlu.datasets import OOS, Utterance

FALLBACK = "fallback"  # the source of a message no annotator claimed


@dataclass
class CascadeReport:
    """Figures of the cascade on one test set; `to_json()` is what `--json` writes."""

    name: str
    n: int
    accuracy: float  # the routed intent (or none, for `oos` rows) equals the label
    classifier_top1: float  # the intent classifier's own first choice, asked of every message
    languages: dict[str, int]  # what the language annotator said, None as "none"
    routed_by: dict[str, dict[str, float]]  # source -> {share, n, accuracy}
    latency_p50_ms: float  # the whole cascade, one message at a time
    latency_p95_ms: float
    errors: list[dict[str, Any]] = field(default_factory=list)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def annotate(annotators: list[Annotator], text: str) -> Annotations:
    """Run the annotators in order on one message, as the dispatcher does."""
    annotations = Annotations()
    for annotator in annotators:
        await annotator.annotate(text, annotations)
    return annotations


async def evaluate_cascade(config: NluConfig, catalogue: IntentCatalogue, data_dir: Path, test: list[Utterance],
                           *, name: str = "cascade", progress: bool = False) -> CascadeReport:
    """Route every test message through `build_annotators(config, ...)` and count what routed it."""
    from bot.nlu.pipeline import build_annotators

    annotators = build_annotators(config, catalogue, data_dir)
    classifier = next((a for a in annotators if a.name in ("embedding", "nli")), None)
    await start_annotators(annotators)
    try:
        rows = test
        if progress:
            from tqdm import tqdm

            rows = tqdm(test, desc="routing", unit="msg", leave=False, mininterval=2.0)
        results, timings, own_first = [], [], []
        for row in rows:
            started = time.perf_counter()
            annotations = await annotate(annotators, row.text)
            timings.append((time.perf_counter() - started) * 1000)
            results.append(annotations)
            if classifier is not None:
                # The classifier's own first choice, even where a rule had pinned the message.
                alone = Annotations(language=annotations.language)
                await classifier.annotate(row.text, alone)
                own_first.append(alone.ranking[0].name if alone.ranking else None)
    finally:
        await close_annotators(annotators)
    return _report(name, test, results, timings, own_first)


def _report(name: str, test: list[Utterance], results: list[Annotations], timings: list[float],
            own_first: list[str | None]) -> CascadeReport:
    sources: Counter[str] = Counter()
    right: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    errors = []
    for row, found in zip(test, results, strict=True):
        source = found.intent.source if found.intent else FALLBACK
        predicted = found.intent_name or OOS
        sources[source] += 1
        if predicted == row.label:
            right[source] += 1
        else:
            pairs[(row.label, predicted)] += 1
            errors.append({"text": row.text, "label": row.label, "predicted": predicted, "source": source})
    n = len(test)
    in_scope = [(row, first) for row, first in zip(test, own_first, strict=False) if row.label != OOS]
    arr = np.array(timings) if timings else np.zeros(1)
    return CascadeReport(
        name=name, n=n, accuracy=sum(right.values()) / max(n, 1),
        classifier_top1=sum(first == row.label for row, first in in_scope) / max(len(in_scope), 1)
        if own_first else float("nan"),
        languages=dict(Counter(a.language or "none" for a in results)),
        routed_by={s: {"share": c / max(n, 1), "n": c, "accuracy": right[s] / c} for s, c in sources.most_common()},
        latency_p50_ms=float(np.percentile(arr, 50)), latency_p95_ms=float(np.percentile(arr, 95)),
        errors=errors, confusions=[(a, b, c) for (a, b), c in pairs.most_common(15)],
    )


def format_cascade(reports: list[CascadeReport], max_errors: int = 12) -> str:
    """Plain text: accuracy, classifier top-1 and routing shares of each report, then its errors."""
    lines = []
    for report in reports:
        lines.append(f"[{report.name}] {report.n} messages, languages {report.languages}")
        lines.append(f"  top-1 accuracy (routed intent = label): {report.accuracy:.2%}")
        lines.append(f"  classifier alone, first choice: {report.classifier_top1:.2%}")
        for source, figures in report.routed_by.items():
            lines.append(f"  routed by {source:10} {figures['share']:7.2%} ({figures['n']:>4}), "
                         f"right {figures['accuracy']:.2%}")
        lines.append(f"  latency per message, whole cascade: p50 {report.latency_p50_ms:.1f} ms, "
                     f"p95 {report.latency_p95_ms:.1f} ms")
        lines.append("  top confusions: " + ", ".join(f"{a}->{b} x{c}" for a, b, c in report.confusions[:max_errors]))
        for error in report.errors[:max_errors]:
            lines.append(f"    {error['text']!r}: {error['label']} -> {error['predicted']} ({error['source']})")
    return "\n".join(lines)
