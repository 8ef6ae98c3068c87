"""Builds the configured LanguageModel: resolves `lm.model` to a file, folder or URL and picks the backend."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError
from bot.models.base import LanguageModel
from bot.models.bundled import is_bundled, resolve_bundled
from bot.models.config import LmConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """What `lm.model` points at, once resolved: kind is "gguf", "hf_folder" or "url"."""

    kind: str
    location: str
    name: str

    @property
    def path(self) -> Path:
        return Path(self.location)


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def resolve_source(model: str, data_dir: Path, *, setting: str = "lm.model", progress: bool = True) -> ModelSource:
    """Turn the `lm.model` setting into a GGUF file, a Hugging Face folder or a server URL."""
    if model.startswith(("http://", "https://")):
        return ModelSource("url", model, model)
    if is_bundled(model):
        path = resolve_bundled(model, data_dir, setting=setting, progress=progress)
        return ModelSource("gguf", str(path), model.split(":", 1)[1])
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(
                f"setting `{setting}`: {path} is a file but not a .gguf; give a GGUF file or a model folder"
            )
        return ModelSource("gguf", str(path), path.stem)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource("hf_folder", str(path), path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0]), ggufs[0].stem)
        raise ConfigError(
            f"setting `{setting}`: folder {path} holds neither a Hugging Face model (config.json) "
            f"nor exactly one .gguf file (found {len(ggufs)})"
        )
    raise ConfigError(
        f"setting `{setting}`: {model!r} is not a bundled model (bundled:qwen2.5-1.5b, bundled:smollm2), "
        "an existing GGUF file or model folder, nor an http(s) URL"
    )


def pick_backend(source: ModelSource, requested: str) -> str:
    """The backend for a source: the requested one when it can serve it, else an error."""
    if source.kind == "url":
        if requested not in ("auto", "openai"):
            raise ConfigError(f"setting `lm.backend` = {requested} cannot serve a URL; use openai (or auto)")
        return "openai"
    if requested == "openai":
        raise ConfigError("setting `lm.backend` = openai needs `lm.model` to be an http(s) URL of the server")
    if source.kind == "hf_folder":
        if requested == "llama_cpp":
            raise ConfigError(
                f"setting `lm.backend` = llama_cpp needs a GGUF file, but `lm.model` is the folder {source.location}"
            )
        return "transformers"
    if requested == "auto":
        if llama_cpp_installed():
            return "llama_cpp"
        log.warning(
            "llama-cpp-python is not installed; running %s on transformers (slow; pip install 'tandem[llama]')",
            source.location,
        )
        return "transformers"
    return requested


def build_language_model(config: LmConfig, data_dir: Path, *, progress: bool = True) -> LanguageModel:
    """The configured model, not yet loaded: call `await model.start()` at start-up.

    Joining a bundled model and converting a GGUF for transformers happen here, once,
    into `data_dir/models`; both are skipped when their result is already there.
    """
    source = resolve_source(config.model, data_dir, progress=progress)
    backend = pick_backend(source, config.backend)
    common = {
        "context_window": config.context_window,
        "max_concurrent": config.max_concurrent,
        "timeout_s": config.timeout_s,
    }
    log.info("language model model=%s backend=%s location=%s", config.model, backend, source.location)
    if backend == "openai":
        from bot.models.openai_backend import OpenAiModel

        api_key = config.api_key.get_secret_value() if config.api_key else None
        return OpenAiModel(source.location, served_model=config.served_model, api_key=api_key,
                           tokenizer=config.tokenizer, **common)
    if backend == "llama_cpp":
        if not llama_cpp_installed():
            raise ConfigError(
                "setting `lm.backend` = llama_cpp needs llama-cpp-python: pip install 'tandem[llama]' "
                "(builds from source, ~8 min on 2 cores)"
            )
        from bot.models.llama_cpp_backend import LlamaCppModel

        return LlamaCppModel(
            source.path, name=source.name, n_threads=config.n_threads, cache_slots=config.cache_slots,
            weight_repack=config.weight_repack, **common
        )
    from bot.models.transformers_backend import TransformersModel

    folder = source.path
    if source.kind == "gguf":
        from bot.models.gguf_convert import ensure_converted

        folder = ensure_converted(source.path, data_dir, dtype=config.torch_dtype)
    return TransformersModel(
        folder,
        name=source.name,
        n_threads=config.n_threads,
        cache_slots=config.cache_slots,
        dtype=config.torch_dtype,
        **common,
    )


async def open_language_model(config: LmConfig, data_dir: Path) -> LanguageModel:
    """Build and start the model without blocking the event loop (join/convert and load
    run in a worker thread); the composition root's one call at start-up."""
    import asyncio

    model = await asyncio.to_thread(build_language_model, config, data_dir, progress=False)
    await model.start()
    return model
