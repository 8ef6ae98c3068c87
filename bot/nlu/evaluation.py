"""Evaluation of an IntentModel on labelled utterances: accuracy, macro-F1, out-of-scope, errors, latency.

Standard CLINC150 metrics: in-scope accuracy counts an `oos` prediction of an in-scope query
as wrong; out-of-scope recall is the share of `oos` queries the model refused. The
out-of-scope threshold is calibrated on a validation set (never on the test set) when one
is given, otherwise the model's configured center is used.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bot.core.errors import ConfigError
from bot.nlu.cache import EmbeddingCache
from bot.nlu.classifier import IntentModel
from bot.nlu.datasets import OOS, Utterance, intent_name
from bot.nlu.scoring import calibrate_center


@dataclass
class EvalReport:
    """Figures of one model on one test set; `to_json()` is what `--json` writes."""

    model: str
    n_in_scope: int
    n_oos: int
    center: float
    in_scope_accuracy: float
    top1_accuracy: float  # in-scope accuracy with no out-of-scope threshold
    macro_f1: float
    oos_recall: float
    oos_precision: float
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_p50_ms: float
    batched_per_s: float
    unbatched_per_s: float
    calibrated_on: str
    operating_points: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    confusions: list[tuple[str, str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _progress(iterable, total: int, desc: str, show: bool):
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, mininterval=2.0)


def encode_all(model: IntentModel, texts: list[str], batch_size: int = 32, progress: bool = False,
               cache: EmbeddingCache | None = None) -> tuple[np.ndarray, float]:
    """Embeddings of `texts` in batches (through the adapter), and batched utterances per second.

    With `cache`, raw encoder vectors of the same texts are reused between runs (throughput is
    then NaN: nothing was measured).
    """
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    raw = cache.load(model.encoder.model_id, f"texts-{key}", texts) if cache else None
    if raw is not None:
        vectors = model.adapter.transform(raw) if model.adapter is not None else raw
        return vectors, float("nan")
    chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    parts = []
    started = time.perf_counter()
    for chunk in _progress(chunks, len(chunks), f"encoding {len(texts)}", progress):
        parts.append(model.encoder.encode(chunk))
    elapsed = time.perf_counter() - started
    raw = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    if cache is not None:
        cache.store(model.encoder.model_id, f"texts-{key}", texts, raw, replace_older=False)
    vectors = model.adapter.transform(raw) if model.adapter is not None else raw
    return vectors, len(texts) / max(elapsed, 1e-9)


def measure_latency(model: IntentModel, texts: list[str], sample: int = 200) -> tuple[float, float, float, float]:
    """p50 and p95 wall milliseconds to classify one utterance alone (encode + score), utterances/s,
    and the p50 CPU milliseconds of this thread (wall time inflates when other processes share
    the cores; with torch on one thread, CPU time is what an idle core would take)."""
    timings, cpu = [], []
    for text in texts[:sample]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        model.rank(model.encoder.encode([text]))
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    if not timings:
        return 0.0, 0.0, 0.0, 0.0
    arr = np.array(timings)
    return (float(np.percentile(arr, 50)), float(np.percentile(arr, 95)), 1000.0 / float(arr.mean()),
            float(np.percentile(cpu, 50)))


def _top(model: IntentModel, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return model.scorer.top(vectors)


def _truth(model: IntentModel, rows: list[Utterance]) -> np.ndarray:
    """Index of each row's intent in the model's catalogue; -1 for out-of-scope."""
    index = {name: i for i, name in enumerate(model.scorer.intents)}
    unknown = sorted({r.label for r in rows if r.label != OOS and intent_name(r.label) not in index})
    if unknown:
        raise ConfigError(f"labels missing from the catalogue: {', '.join(unknown[:10])}")
    return np.array([-1 if r.label == OOS else index[intent_name(r.label)] for r in rows])


def calibrate(model: IntentModel, val: list[Utterance], progress: bool = False,
              min_accuracy: float | None = None, cache: EmbeddingCache | None = None) -> float:
    """The score center that best separates in-scope from out-of-scope on validation data."""
    return calibrate_points(model, val, progress, (min_accuracy,), cache)[0]


def calibrate_points(model: IntentModel, val: list[Utterance], progress: bool = False,
                     min_accuracies: tuple[float | None, ...] = (None, 0.90),
                     cache: EmbeddingCache | None = None) -> list[float]:
    """Centers for several operating points (best sum, or best oos recall at a minimum accuracy)."""
    vectors, _ = encode_all(model, [r.text for r in val], progress=progress, cache=cache)
    best, top = _top(model, vectors)
    truth = _truth(model, val)
    in_scope = truth >= 0
    return [calibrate_center(top, (best == truth) & in_scope, in_scope, m) for m in min_accuracies]


def _metrics(best: np.ndarray, top: np.ndarray, truth: np.ndarray, center: float) -> dict[str, float]:
    predicted = np.where(top >= center, best, -1)
    in_scope = truth >= 0
    n_in, n_oos = int(in_scope.sum()), int((~in_scope).sum())
    refused = predicted == -1
    return {
        "in_scope_accuracy": float((predicted == truth)[in_scope].sum()) / max(n_in, 1),
        "oos_recall": float((refused & ~in_scope).sum()) / max(n_oos, 1) if n_oos else float("nan"),
        "oos_precision": float((refused & ~in_scope).sum()) / max(int(refused.sum()), 1),
    }


def _macro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    labels = np.union1d(np.unique(truth), np.unique(predicted))
    f1s = []
    for label in labels:
        tp = float(((predicted == label) & (truth == label)).sum())
        fp = float(((predicted == label) & (truth != label)).sum())
        fn = float(((predicted != label) & (truth == label)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s)) if f1s else 0.0


def evaluate(model: IntentModel, test: list[Utterance], *, name: str = "model", center: float | None = None,
             val: list[Utterance] | None = None, progress: bool = False, latency_sample: int = 200,
             cache: EmbeddingCache | None = None) -> EvalReport:
    """Run the model over `test`, calibrating the out-of-scope center on `val` when given."""
    operating: dict[str, dict[str, float]] = {}
    calibrated_on = "config"
    if center is None and val:
        center, strict = calibrate_points(model, val, progress, cache=cache)
        calibrated_on = "val"
        operating["val_in_scope_acc>=0.90"] = {"center": strict}
    if center is None:
        center = model.scorer.center
    texts = [r.text for r in test]
    vectors, batched = encode_all(model, texts, progress=progress, cache=cache)
    p50, p95, unbatched, cpu_p50 = measure_latency(model, texts, latency_sample)
    best, top = _top(model, vectors)
    truth = _truth(model, test)
    metrics = _metrics(best, top, truth, center)
    for label, point in operating.items():
        point.update(_metrics(best, top, truth, point["center"]))
    predicted = np.where(top >= center, best, -1)
    names = model.scorer.intents
    in_scope = truth >= 0
    errors: dict[str, dict[str, Any]] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    for t, p in zip(truth, predicted, strict=True):
        if t == p:
            continue
        true_name = names[t] if t >= 0 else OOS
        pred_name = names[p] if p >= 0 else OOS
        pairs[(true_name, pred_name)] += 1
        entry = errors.setdefault(true_name, {"errors": 0, "predicted": Counter()})
        entry["errors"] += 1
        entry["predicted"][pred_name] += 1
    for entry in errors.values():
        entry["predicted"] = dict(entry["predicted"].most_common(3))
    return EvalReport(
        model=name, n_in_scope=int(in_scope.sum()), n_oos=int((~in_scope).sum()), center=float(center),
        top1_accuracy=float((best == truth)[in_scope].mean()) if in_scope.any() else 0.0,
        macro_f1=_macro_f1(predicted, truth), latency_p50_ms=p50, latency_p95_ms=p95, cpu_p50_ms=cpu_p50,
        batched_per_s=batched, unbatched_per_s=unbatched, calibrated_on=calibrated_on,
        operating_points=operating,
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1]["errors"])),
        confusions=[(a, b, n) for (a, b), n in pairs.most_common(15)], **metrics,
    )


def format_report(reports: list[EvalReport], max_errors: int = 10) -> str:
    """A plain-text table of reports side by side, then each report's worst intents and confusions."""
    rows = [
        ("in-scope accuracy", "in_scope_accuracy", "{:.2%}"), ("top-1 (no oos)", "top1_accuracy", "{:.2%}"),
        ("macro-F1", "macro_f1", "{:.3f}"), ("oos recall", "oos_recall", "{:.2%}"),
        ("oos precision", "oos_precision", "{:.2%}"), ("score center", "center", "{:.3f}"),
        ("latency p50 ms", "latency_p50_ms", "{:.1f}"), ("latency p95 ms", "latency_p95_ms", "{:.1f}"),
        ("CPU ms p50", "cpu_p50_ms", "{:.1f}"),
        ("batched utt/s", "batched_per_s", "{:.0f}"), ("unbatched utt/s", "unbatched_per_s", "{:.0f}"),
    ]
    width = max(14, *(len(r.model[-28:]) for r in reports))
    lines = [f"{'':20}" + "".join(f"{r.model[-28:]:>{width + 2}}" for r in reports)]
    for title, key, fmt in rows:
        lines.append(f"{title:20}" + "".join(f"{fmt.format(getattr(r, key)):>{width + 2}}" for r in reports))
    for report in reports:
        lines.append(f"\n[{report.model}] {report.n_in_scope} in-scope, {report.n_oos} oos; "
                     f"threshold calibrated on {report.calibrated_on}")
        for label, point in report.operating_points.items():
            lines.append(f"  operating point {label}: center {point['center']:.3f}, in-scope acc "
                         f"{point['in_scope_accuracy']:.2%}, oos recall {point['oos_recall']:.2%}")
        lines.append("  most errors: " + ", ".join(
            f"{name} {e['errors']} (-> {', '.join(e['predicted'])})" for name, e in list(report.errors.items())[:max_errors]))
        lines.append("  top confusions: " + ", ".join(f"{a}->{b} x{n}" for a, b, n in report.confusions[:max_errors]))
    return "\n".join(lines)
