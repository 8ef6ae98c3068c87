"""Attempts at issue 15's CLINC150 goals, each against the shipped adapter measured in the same run.

    .venv/bin/python -m bench.nlu_attempts [--shots 10] [--fuse e5] [--finetune-epochs 3] [--data-dir D]

The baseline is what `tandem nlu train` + `tandem nlu eval` do: the frozen encoder, the IntentAdapter
trained on the catalogue (label-name descriptions + the shots), the out-of-scope center chosen on
`val` + `oos_val`. Every variant changes one thing and is scored on the same full test split
(`test` + `oos_test`), its threshold also chosen on val only:

- `oos examples`: CLINC150's `oos_train` given to the adapter as one more class, the out-of-scope
  examples a bot author can provide; a query whose best class is it is out of scope;
- `energy`: the out-of-scope statistic is the log-sum-exp of the adapter's prototype cosines
  (an energy score) instead of the best intent's relative score;
- `knn density`: the statistic is the mean cosine to the query's 5 nearest catalogue texts;
- `fused`: the encoder's vectors concatenated with another shipped encoder's (`--fuse e5`), each
  L2-normalised, and the adapter trained on the concatenation;
- `fine-tuned`: the encoder fine-tuned with the adapter's CosFace loss (`bot/nlu/finetune.py`,
  `--finetune-epochs`), then an adapter on top, as `tandem nlu train --method encoder` would leave it;
  with `--fuse`, also the fine-tuned encoder fused with the other one.

Embeddings are cached in the data folder, so a second run only trains and scores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.nlu.adapter import IntentAdapter, train_adapter  # noqa: E402
from bot.nlu.classifier import catalogue_texts  # noqa: E402
from bot.nlu.config import NluConfig  # noqa: E402
from bot.nlu.datasets import OOS, catalogue_from_data, intent_name, load_utterances, sample_shots  # noqa: E402
from bot.nlu.encoders import load_encoder, resolve_torch_path  # noqa: E402
from bot.nlu.scoring import IntentScorer, calibrate_center  # noqa: E402

CLINC = Path(os.environ.get("TANDEM_CLINC", "/work/shared/data/clinc150/data_full.json"))


@dataclass
class Split:
    texts: list[str]
    truth: np.ndarray  # intent index, -1 out of scope


@dataclass
class Result:
    name: str
    val_top1: float  # in-scope top-1 on val: what a choice between variants may look at
    top1: float  # in-scope top-1 on test, no threshold
    in_scope_90: float  # in-scope accuracy at the val point with val in-scope accuracy >= 90 %
    oos_90: float  # out-of-scope recall at that point
    in_scope_sum: float  # at the val point that maximises accuracy + recall
    oos_sum: float
    center_90: float  # the val-chosen thresholds (relative score, or the variant's statistic)
    center_sum: float
    seconds: float


def embed(spec: str, texts: list[str], cache_dir: Path, threads: int) -> np.ndarray:
    """Raw encoder vectors of `texts`, cached by encoder and text list."""
    key = hashlib.sha256(("\n".join(texts) + spec).encode()).hexdigest()[:16]
    path = cache_dir / f"{Path(spec).name}-{key}.npy"
    if path.exists():
        return np.load(path)
    encoder = load_encoder(spec, threads)
    parts = [encoder.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    vectors = np.concatenate(parts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def fuse(*blocks: np.ndarray) -> np.ndarray:
    joined = np.concatenate([b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in blocks], axis=1)
    return joined / np.linalg.norm(joined, axis=1, keepdims=True)


def scorer_for(names, vectors, owners, is_description, adapter: IntentAdapter, config: NluConfig) -> IntentScorer:
    return IntentScorer(names, adapter.transform(vectors), owners, is_description,
                        description_weight=config.description_weight, top_k=config.top_k,
                        scale=config.temperature, prototypes=adapter.prototypes,
                        prototype_weight=config.prototype_weight)


def operating_points(stat_val, correct_val, in_val, stat_test, correct_test, in_test) -> tuple[float, ...]:
    """In-scope accuracy and oos recall on test at the two val-chosen thresholds."""
    out, centers = [], []
    for minimum in (0.90, None):
        t = calibrate_center(stat_val, correct_val, in_val, minimum)
        accept = stat_test >= t
        out += [float((accept & correct_test & in_test).sum()) / in_test.sum(),
                float((~accept & ~in_test).sum()) / (~in_test).sum()]
        centers.append(t)
    return (*out, *centers)


def run_variant(name, names, vectors, owners, is_description, val_vec, val, test_vec, test, config, *,
                extra_class: tuple[np.ndarray, int] | None = None, statistic: str = "relative",
                frozen: bool = False, threads: int = 2) -> Result:
    started = time.perf_counter()
    train_vecs, train_owners, train_names = vectors, owners, list(names)
    if extra_class is not None:  # out-of-scope examples as class len(names)
        oos_vectors, _ = extra_class
        train_vecs = np.concatenate([vectors, oos_vectors])
        train_owners = np.concatenate([owners, np.full(len(oos_vectors), len(names))])
        train_names = [*names, "__oos__"]
    desc = is_description if extra_class is None else np.concatenate([is_description, np.zeros(len(extra_class[0]), bool)])
    if frozen:  # no adapter: the encoder's own vectors (zero-shot has one text per intent to learn from)
        adapter = None
        scorer = IntentScorer(train_names, train_vecs, train_owners, desc, description_weight=config.description_weight,
                              top_k=config.top_k, scale=config.temperature)
    else:
        adapter = train_adapter(train_vecs, train_owners, train_names, threads=threads)
        scorer = scorer_for(train_names, train_vecs, train_owners, desc, adapter, config)

    def judged(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        transformed = adapter.transform(vecs) if adapter is not None else vecs
        relative = scorer.relative(scorer.scores(transformed))
        if extra_class is not None:
            best_any = relative.argmax(axis=1)
            in_only = relative[:, : len(names)]
            best = in_only.argmax(axis=1)
            stat = in_only[np.arange(len(best)), best] - relative[:, len(names)]
            stat = np.where(best_any == len(names), np.minimum(stat, -1.0), stat)
            return best, stat
        best = relative.argmax(axis=1)
        if statistic == "energy":
            cos = transformed @ adapter.prototypes.T
            stat = np.log(np.exp(20.0 * cos).sum(axis=1)) / 20.0
        elif statistic == "knn":
            sims = transformed @ scorer.vectors.T
            stat = -np.sort(-sims, axis=1)[:, :5].mean(axis=1)
        else:
            stat = relative[np.arange(len(best)), best]
        return best, stat

    best_val, stat_val = judged(val_vec)
    best_test, stat_test = judged(test_vec)
    in_val, in_test = val.truth >= 0, test.truth >= 0
    correct_val, correct_test = (best_val == val.truth) & in_val, (best_test == test.truth) & in_test
    top1 = float(correct_test.sum()) / in_test.sum()
    points = operating_points(stat_val, correct_val, in_val, stat_test, correct_test, in_test)
    return Result(name, float(correct_val.sum()) / in_val.sum(), top1, *points, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CLINC)
    parser.add_argument("--shots", type=int, default=10, help="examples per intent; 0 = the full train split")
    parser.add_argument("--zero-shot", action="store_true", help="label names only; frozen encoders, no adapter")
    parser.add_argument("--expand", type=int, default=0, help="zero-shot: examples the model writes per label")
    parser.add_argument("--lm", default="bundled:qwen2.5-1.5b", help="the model that writes them")
    parser.add_argument("--lm-threads", type=int, default=2)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--fuse", default="", help="a second encoder to concatenate (e5, use), or empty")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="0 skips the fine-tuned variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nlu_attempts"))
    args = parser.parse_args()

    train_rows = load_utterances(args.data, "train")
    test_rows = load_utterances(args.data, "test")
    val_rows = load_utterances(args.data, "val")
    oos_train = [r.text for r in load_utterances(args.data, "oos_train")]
    labels = sorted({r.label for r in test_rows} - {OOS})
    catalogue = catalogue_from_data(labels, None if args.zero_shot else sample_shots(train_rows, args.shots or None, 0))
    names = catalogue.names
    index = {n: i for i, n in enumerate(names)}

    def split(rows) -> Split:
        return Split([r.text for r in rows], np.array([-1 if r.label == OOS else index[intent_name(r.label)] for r in rows]))

    val, test = split(val_rows), split(test_rows)
    texts, owners, is_description = catalogue_texts(catalogue)
    owners, is_description = np.array(owners), np.array(is_description)
    config = NluConfig()
    cache = args.data_dir / "vectors"

    def vectors_of(spec: str) -> tuple[np.ndarray, ...]:
        started = time.perf_counter()
        out = tuple(embed(spec, t, cache, args.threads) for t in (texts, val.texts, test.texts, oos_train))
        print(f"embedded with {spec} in {time.perf_counter() - started:.0f} s", flush=True)
        return out

    cat, val_vec, test_vec, oos_vec = vectors_of(args.encoder)
    common = (names, cat, owners, is_description, val_vec, val, test_vec, test, config)
    if args.zero_shot:
        results = [run_variant(f"{args.encoder}, label names (baseline)", *common, frozen=True)]
        if args.fuse:
            other = vectors_of(args.fuse)
            results.append(run_variant(f"{args.fuse}, label names", names, *other[:1], owners, is_description,
                                       other[1], val, other[2], test, config, frozen=True))
            fused = [fuse(a, b) for a, b in zip((cat, val_vec, test_vec), other[:3], strict=True)]
            results.append(run_variant(f"fused {args.encoder} + {args.fuse}, label names", names, fused[0], owners,
                                       is_description, fused[1], val, fused[2], test, config, frozen=True))
        if args.expand:
            results += expansion_variants(catalogue, names, args, config, val, test, cache)
        report(results, args, test, val)
        return
    results = [run_variant(f"{args.encoder} + adapter (baseline)", *common, threads=args.threads),
               run_variant(f"{args.encoder} frozen, no adapter", *common, frozen=True)]
    results.append(run_variant("oos examples (oos_train as a class)", *common, extra_class=(oos_vec, 0),
                               threads=args.threads))
    results.append(run_variant("energy score", *common, statistic="energy", threads=args.threads))
    results.append(run_variant("knn density (5 nearest)", *common, statistic="knn", threads=args.threads))
    if args.fuse:
        other = vectors_of(args.fuse)
        fused = [fuse(a, b) for a, b in zip((cat, val_vec, test_vec), other[:3], strict=True)]
        fused_common = (names, fused[0], owners, is_description, fused[1], val, fused[2], test, config)
        results.append(run_variant(f"fused {args.encoder} + {args.fuse} frozen, no adapter", *fused_common, frozen=True))
        results.append(run_variant(f"fused {args.encoder} + {args.fuse}", *fused_common, threads=args.threads))
        results.append(run_variant(f"fused {args.encoder} + {args.fuse}, energy score", *fused_common,
                                   statistic="energy", threads=args.threads))
    if args.finetune_epochs:
        from bot.nlu.finetune import finetune_encoder

        out = args.data_dir / "finetuned" / f"{args.encoder}-{args.shots}shot-{args.finetune_epochs}ep"
        if not (out / "tandem_nlu.json").exists():
            stats = finetune_encoder(resolve_torch_path(args.encoder), out, texts, owners.tolist(),
                                     epochs=args.finetune_epochs, threads=args.threads, progress=True)
            print(f"fine-tuned: {stats}", flush=True)
        tuned = vectors_of(str(out))
        results.append(run_variant(f"fine-tuned {args.finetune_epochs} epochs + adapter", names, tuned[0], owners,
                                   is_description, tuned[1], val, tuned[2], test, config, threads=args.threads))
        if args.fuse:
            both = [fuse(a, b) for a, b in zip(tuned[:3], other[:3], strict=True)]
            results.append(run_variant(f"fine-tuned {args.finetune_epochs} epochs, fused + {args.fuse}", names,
                                       both[0], owners, is_description, both[1], val, both[2], test, config,
                                       threads=args.threads))

    report(results, args, test, val)


def expansion_variants(catalogue, names, args, config, val: Split, test: Split, cache: Path) -> list[Result]:
    """Zero-shot with model-written examples (`tandem nlu eval --expand`), unfiltered and filtered: an
    example is kept only when, among all label names, it is closest to its own (in the fused space when
    --fuse names an encoder)."""
    from bot.nlu.catalogue import Intent, IntentCatalogue
    from bot.nlu.cli import _expanded

    expanded = _expanded(catalogue, args.lm, args.expand, "en", args.data_dir, args.lm_threads)
    specs = [args.encoder, *([args.fuse] if args.fuse else [])]

    def vectors(texts: list[str]) -> np.ndarray:
        blocks = [embed(spec, texts, cache, args.threads) for spec in specs]
        return fuse(*blocks) if len(blocks) > 1 else blocks[0]

    label_vectors = vectors([label for label in (i.texts("descriptions")[0] for i in catalogue)])
    kept_intents, dropped = [], 0
    for index, intent in enumerate(expanded):
        examples = list(intent.texts("examples"))
        if not examples:
            kept_intents.append(intent)
            continue
        nearest = (vectors(examples) @ label_vectors.T).argmax(axis=1)
        kept = [text for text, near in zip(examples, nearest, strict=True) if near == index]
        dropped += len(examples) - len(kept)
        kept_intents.append(Intent(name=intent.name, descriptions=intent.descriptions,
                                   examples={"en": kept} if kept else {}))
    filtered = IntentCatalogue(kept_intents)
    total = sum(len(i.texts("examples")) for i in expanded)
    print(f"expansion: {total} examples written, {dropped} dropped by the filter", flush=True)
    out = []
    val_vec, test_vec = vectors(val.texts), vectors(test.texts)
    for label, cat in ((f"+ {args.expand} written examples each", expanded), ("+ written examples, filtered", filtered)):
        texts, owners, is_description = catalogue_texts(cat)
        for weight in (config.description_weight, 0.5):
            tuned = config.model_copy(update={"description_weight": weight})
            out.append(run_variant(f"{'+'.join(specs)}, label names {label}, description weight {weight}", names,
                                   vectors(texts), np.array(owners), np.array(is_description), val_vec, val,
                                   test_vec, test, tuned, frozen=True))
    return out


def report(results: list[Result], args, test: Split, val: Split) -> None:
    base = results[0]
    kind = "zero-shot" if args.zero_shot else "full train" if not args.shots else f"{args.shots}-shot"
    print(f"\nCLINC150 {kind}, test {len(test.texts)} "
          f"(oos {int((test.truth < 0).sum())}), thresholds from val {len(val.texts)}")
    print("| variant | val top-1 | test top-1 | in-scope / oos recall (val acc >= 90 %) "
          "| in-scope / oos recall (best sum) | test top-1 vs baseline | centers (90 % / sum) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.name} | {r.val_top1:.2%} | {r.top1:.2%} | {r.in_scope_90:.2%} / {r.oos_90:.2%} | "
              f"{r.in_scope_sum:.2%} / {r.oos_sum:.2%} | {r.top1 - base.top1:+.2%} | "
              f"{r.center_90:.3f} / {r.center_sum:.3f} | {r.seconds:.0f} |")


if __name__ == "__main__":
    main()
