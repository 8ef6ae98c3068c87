"""Fine-tuning of a sentence-transformers encoder on intent examples (torch; `tandem nlu train`).

The method is metric learning with a cosine classifier (CosFace-style normalised softmax
with an additive margin): every catalogue text is pulled towards a learned prototype of
its intent and pushed away from the others, so the fine-tuned encoder's cosine similarity
to examples and descriptions - what IntentScorer uses - separates intents better. Like
SetFit it needs only a handful of examples per intent, but it costs one forward/backward
pass per example and epoch instead of one per pair. Prototypes start at the class
centroids of the frozen encoder, so the first steps already have a sensible target.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path

from bot.core.errors import ModelUnavailable

log = logging.getLogger(__name__)


def finetune_encoder(
    base: Path,
    out: Path,
    texts: list[str],
    labels: list[int],
    *,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 5e-5,
    scale: float = 20.0,
    margin: float = 0.1,
    threads: int = 2,
    seed: int = 0,
    progress: bool = False,
    meta: dict | None = None,
) -> dict:
    """Fine-tune the sentence-transformers folder `base` on (text, label) pairs; save to `out`.

    Returns training statistics (examples, epochs, seconds, final loss), also written with
    `meta` into `out/tandem_nlu.json`, which marks the folder as a trained Tandem encoder.
    """
    try:
        import torch
        import torch.nn.functional as F
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelUnavailable("training needs torch and sentence-transformers (pip install 'tandem[nlu]')") from exc

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(str(base), device="cpu")
    n_classes = int(max(labels)) + 1

    def embed(batch: list[str]):
        features = model.preprocess(batch) if hasattr(model, "preprocess") else model.tokenize(batch)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    # Prototypes start at the frozen encoder's class centroids.
    model.eval()
    with torch.no_grad():
        initial = torch.cat([embed(texts[i : i + 128]) for i in range(0, len(texts), 128)])
    label_tensor = torch.tensor(labels)
    centroids = torch.zeros(n_classes, initial.shape[1]).index_add_(0, label_tensor, initial)
    prototypes = torch.nn.Parameter(F.normalize(centroids, dim=-1))

    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total_steps = max(epochs * steps_per_epoch, 1)
    optimizer = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": lr}, {"params": [prototypes], "lr": lr * 100}], weight_decay=0.01
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, total_steps // 10)) * max(0.0, 1 - step / total_steps)
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, desc="training", unit="step")
    order = list(range(len(texts)))
    started = time.perf_counter()
    loss_value = float("nan")
    model.train()
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            emb = embed([texts[i] for i in idx])
            target = label_tensor[idx]
            cosine = emb @ F.normalize(prototypes, dim=-1).T  # (batch, classes)
            cosine = cosine - margin * F.one_hot(target, n_classes)
            loss = F.cross_entropy(scale * cosine, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_value = float(loss.detach())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    stats = {
        "base": str(base), "examples": len(texts), "classes": n_classes, "epochs": epochs,
        "seconds": round(time.perf_counter() - started, 1), "loss": round(loss_value, 4), **(meta or {}),
    }
    (out / "tandem_nlu.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    log.info("fine-tuned encoder saved to %s: %s", out, stats)
    return stats
