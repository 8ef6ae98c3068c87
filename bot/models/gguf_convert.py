"""Converts a GGUF file once into a cached safetensors folder that the transformers backend loads fast."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from pathlib import Path

from bot.core.errors import ConfigError

log = logging.getLogger(__name__)


def converted_folder(gguf_path: Path, data_dir: Path) -> Path:
    """Where the conversion of `gguf_path` lives: named by file stem and size, so a
    replaced file of the same name gets a fresh conversion instead of a stale one."""
    return data_dir / "models" / "hf" / f"{gguf_path.stem}-{gguf_path.stat().st_size}"


def ensure_converted(gguf_path: Path, data_dir: Path, *, setting: str = "lm.model", dtype: str = "float32") -> Path:
    """The safetensors folder for `gguf_path`, converting it on first use only.

    transformers can load a GGUF directly but dequantises it on every start (about 20 s
    for SmolLM2-135M, minutes for 1.5B); a saved folder reloads in well under a second.
    In transformers 5.x `save_pretrained` refuses a GGUF-loaded model while its config
    carries a quantization_config, so the weights are moved into a fresh model built from
    the cleaned config and that one is saved. The folder is written under a temporary
    name and renamed, so an interrupted conversion is never mistaken for a finished one.
    """
    target = converted_folder(gguf_path, data_dir)
    if (target / "config.json").is_file():
        return target
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            f"setting `{setting}`: converting {gguf_path} for the transformers backend needs torch, "
            f"transformers, gguf and accelerate: pip install 'tandem[nlu]' gguf accelerate ({exc})"
        ) from exc

    started = time.perf_counter()
    log.info("converting %s to safetensors in %s (once)", gguf_path, target)
    folder, name = str(gguf_path.parent), gguf_path.name
    torch_dtype = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model setting
        raise ConfigError(f"setting `{setting}`: transformers cannot read GGUF file {gguf_path}: {exc}") from exc
    # Each GGUF read parses the whole header (the vocabulary too: tens of seconds), so the
    # config is taken from the loaded model rather than read a third time.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings show up as "missing" and are fine; anything else is a broken file.
    missing = [k for k in missing if "lm_head" not in k]
    if missing or unexpected:
        raise ConfigError(
            f"setting `{setting}`: {gguf_path} did not convert cleanly "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if loaded.generation_config is not None:
        fresh.generation_config = loaded.generation_config
    del loaded

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError as exc:
        if (target / "config.json").is_file():
            return target  # another process finished the same conversion first
        raise ConfigError(f"setting `{setting}`: cannot write converted model to {target}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)
    return target
