"""'Poor Man's BERT' layer dropping: a copy of a sentence-transformers encoder without its top K layers (torch).

Sajjad et al. (2020) found that dropping the top transformer layers of a BERT-like model
keeps most of its accuracy for a proportional gain in speed; fine-tuning the pruned copy
(`tandem nlu train --model PRUNED`) recovers most of the rest.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from bot.core.errors import ConfigError, ModelUnavailable

log = logging.getLogger(__name__)


def _layer_list(auto_model):
    """The ModuleList of transformer blocks of a BERT/RoBERTa/DistilBERT/XLM-R style model."""
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
        module = auto_model
        try:
            for part in path.split("."):
                module = getattr(module, part)
        except AttributeError:
            continue
        return module
    raise ConfigError(f"cannot find the transformer layers of {type(auto_model).__name__}")


def prune_encoder(source: Path, target: Path, drop: int) -> dict:
    """Save a copy of the sentence-transformers folder `source` to `target` without its top `drop` layers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelUnavailable("pruning needs torch and sentence-transformers (pip install 'tandem[nlu]')") from exc
    model = SentenceTransformer(str(source), device="cpu")
    transformer = model[0]
    auto_model = transformer.auto_model
    layers = _layer_list(auto_model)
    total = len(layers)
    if not 0 < drop < total:
        raise ConfigError(f"--drop must be between 1 and {total - 1} for a {total}-layer encoder, got {drop}")
    keep = total - drop
    kept = torch.nn.ModuleList(list(layers)[:keep])
    parent = auto_model
    # Replace the ModuleList on its parent module (e.g. auto_model.encoder.layer).
    for name, module in auto_model.named_modules():
        if module is layers:
            parent_name, _, attr = name.rpartition(".")
            parent = auto_model.get_submodule(parent_name) if parent_name else auto_model
            setattr(parent, attr, kept)
            break
    for key in ("num_hidden_layers", "n_layers"):
        if hasattr(auto_model.config, key):
            setattr(auto_model.config, key, keep)
    target.mkdir(parents=True, exist_ok=True)
    model.save(str(target))
    stats = {"source": str(source), "layers": total, "kept": keep, "dropped": drop}
    (target / "tandem_prune.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    log.info("pruned encoder saved to %s: %s", target, stats)
    return stats
