"""Intent-understanding benchmark: encoders compared, batched vs unbatched throughput, pruned vs full encoder.

    .venv/bin/python -m bench.nlu [--intents 30] [--encoders minilm,e5,use] [--drop 3]

Every ratio is against a baseline measured in the same run. Accuracy is on a CLINC150
subset (the first N intents, 10 examples each from train, their test queries plus as many
oos_test queries, threshold calibrated on val + oos_val) so that slow encoders finish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.core.annotations import Annotations  # noqa: E402
from bot.nlu.catalogue import IntentCatalogue  # noqa: E402
from bot.nlu.classifier import EmbeddingIntentClassifier, IntentModel  # noqa: E402
from bot.nlu.config import NluConfig  # noqa: E402
from bot.nlu.datasets import OOS, catalogue_from_data, load_utterances, sample_shots  # noqa: E402
from bot.nlu.evaluation import evaluate  # noqa: E402

CLINC = Path(os.environ.get("TANDEM_CLINC", "/work/shared/data/clinc150/data_full.json"))
ROOT = Path(__file__).resolve().parents[1]
# (text, intent) pairs of the shipped catalogue in Russian: does the encoder route Russian?
RUSSIAN_PROBE = [
    ("хочу сочинить с тобой сказку про рыцаря", "story"), ("что ты вообще умеешь делать?", "help"),
    ("спасибо тебе огромное за помощь", "thanks"), ("давай всё сотрём и начнём с нуля", "reset"),
    ("хочу поставить оценку этому боту", "feedback"), ("ну всё, мне пора уходить", "goodbye"),
]


def subset(n_intents: int, seed: int = 0):
    train = load_utterances(CLINC, "train")
    labels = sorted({r.label for r in train})[:n_intents]
    keep = set(labels)
    rng = random.Random(seed)

    def pick(split: str, oos_per_intent: int):
        rows = load_utterances(CLINC, split)
        inside = [r for r in rows if r.label in keep]
        outside = [r for r in rows if r.label == OOS]
        return inside + rng.sample(outside, min(len(outside), oos_per_intent * n_intents))

    shots = sample_shots([r for r in train if r.label in keep], 10, seed)
    return catalogue_from_data(labels, shots), pick("test", 10), pick("val", 5)


def folder_mb(spec: str) -> float:
    from bot.nlu.encoders import resolve_torch_path

    try:
        path = resolve_torch_path(spec)
    except Exception:  # noqa: BLE001 - non-folder encoders report no size here
        return float("nan")
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def russian_score(spec: str) -> tuple[float, float]:
    """Share of the Russian probe ranked first, and routed (ranked first and confident enough)."""
    config = NluConfig(encoder=spec)
    model = IntentModel.load(IntentCatalogue.load(ROOT / "intents"), config)
    top = [model.rank(model.encoder.encode([text]))[0] for text, _ in RUSSIAN_PROBE]
    ranked = [name == intent for (name, _, _), (_, intent) in zip(top, RUSSIAN_PROBE, strict=True)]
    routed = [ok and conf >= config.intent_threshold for ok, (_, conf, _) in zip(ranked, top, strict=True)]
    return sum(ranked) / len(ranked), sum(routed) / len(routed)


async def throughput(catalogue, texts: list[str], concurrent: int) -> tuple[float, float]:
    """Utterances/s for `concurrent` requests at once, batched (wait 5 ms) vs one model call each."""
    results = []
    for wait_ms, max_batch in ((0.0, 1), (5.0, concurrent)):
        config = NluConfig(batch_wait_ms=wait_ms, max_batch_size=max_batch)
        classifier = EmbeddingIntentClassifier(catalogue, config, None)
        await classifier.start()
        await asyncio.gather(*(classifier.annotate(t, Annotations()) for t in texts[:concurrent]))  # warm-up
        started = time.perf_counter()
        for start in range(0, len(texts), concurrent):
            await asyncio.gather(*(classifier.annotate(t, Annotations()) for t in texts[start : start + concurrent]))
        results.append(len(texts) / (time.perf_counter() - started))
        await classifier.close()
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=20)
    parser.add_argument("--encoders", default="minilm,e5,use")
    parser.add_argument("--drop", type=int, default=3)
    parser.add_argument("--requests", type=int, default=256)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    catalogue, test, val = subset(args.intents)
    print(f"CLINC150 subset: {len(catalogue)} intents x 10 shots; test {len(test)} "
          f"({sum(r.label == OOS for r in test)} oos); cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")

    print("\n== encoders (frozen, no adapter) ==")
    print(f"{'encoder':34}{'in-scope acc':>13}{'oos recall':>11}{'p50 ms':>8}{'CPU ms':>8}{'MB':>7}{'ru ranked':>10}{'ru routed':>10}")
    reports = {}
    for spec in args.encoders.split(","):
        try:
            model = IntentModel.load(catalogue, NluConfig(encoder=spec, use_trained=False))
        except Exception as exc:  # noqa: BLE001 - a missing optional encoder is reported, not fatal
            print(f"{spec:34} unavailable: {exc}")
            continue
        report = evaluate(model, test, name=spec, val=val, latency_sample=100)
        reports[spec] = report
        print(f"{spec:34}{report.in_scope_accuracy:>13.2%}{report.oos_recall:>11.2%}{report.latency_p50_ms:>8.1f}"
              f"{report.cpu_p50_ms:>8.1f}{folder_mb(spec):>7.0f}" + "".join(f"{v:>10.0%}" for v in russian_score(spec)))

    print(f"\n== batching: {args.requests} requests, 32 concurrent, minilm, 1 torch thread ==")
    texts = [r.text for r in test][: args.requests]
    unbatched, batched = asyncio.run(throughput(catalogue, texts, 32))
    print(f"unbatched {unbatched:.0f} utt/s, batched {batched:.0f} utt/s, ratio {batched / unbatched:.2f}x")

    print(f"\n== pruning: minilm without its top {args.drop} layers ==")
    from bot.nlu.encoders import minilm_path
    from bot.nlu.pruning import prune_encoder

    with tempfile.TemporaryDirectory() as tmp:
        pruned = Path(tmp) / "pruned"
        prune_encoder(minilm_path(), pruned, args.drop)
        full = reports.get("minilm") or evaluate(IntentModel.load(catalogue, NluConfig(use_trained=False)), test,
                                                 name="minilm", val=val, latency_sample=100)
        small = evaluate(IntentModel.load(catalogue, NluConfig(encoder=str(pruned), use_trained=False)), test,
                         name="pruned", val=val, latency_sample=100)
    print(f"{'':10}{'in-scope acc':>13}{'oos recall':>11}{'p50 ms':>8}{'CPU ms':>8}{'batched/s':>10}")
    for report in (full, small):
        print(f"{report.model:10}{report.in_scope_accuracy:>13.2%}{report.oos_recall:>11.2%}"
              f"{report.latency_p50_ms:>8.1f}{report.cpu_p50_ms:>8.1f}{report.batched_per_s:>10.0f}")
    print(f"pruned/full: speed (CPU ms) {full.cpu_p50_ms / max(small.cpu_p50_ms, 1e-9):.2f}x, "
          f"batched {small.batched_per_s / full.batched_per_s:.2f}x, "
          f"accuracy kept {small.in_scope_accuracy / max(full.in_scope_accuracy, 1e-9):.1%}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
