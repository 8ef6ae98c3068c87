"""The transformers backend: a local Hugging Face folder run with torch in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError, ModelError
from bot.models.base import GenerationParams, ModelBase, Prompt
from bot.models.kv_caches import KvCacheLru
from bot.models.threaded import GenerationCancelled, GenerationFinished, WorkerControl, WorkerSet, stream_in_worker

log = logging.getLogger(__name__)


class TransformersModel(ModelBase):
    """A causal LM from a Hugging Face folder (config.json + safetensors + tokenizer).

    One generation runs at a time per model (a lock): torch already spreads one
    generation over `n_threads` cores, and the sampling seed is process-global in torch.
    A DynamicCache per `cache_key` (LRU, `cache_slots`) is kept after each generation and
    cropped to the common prefix of the next prompt, so continuing a story only runs the
    new tokens through the model.
    """

    def __init__(
        self,
        folder: Path,
        *,
        name: str | None = None,
        n_threads: int | None = None,
        context_window: int | None = None,
        max_concurrent: int = 1,
        timeout_s: float = 120.0,
        cache_slots: int = 2,
        dtype: str = "float32",
        setting: str = "lm.model",
    ) -> None:
        super().__init__(max_concurrent=max_concurrent, timeout_s=timeout_s)
        self._workers = WorkerSet()
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.n_threads = n_threads or os.cpu_count() or 1
        self._context_setting = context_window
        self.context_window = context_window or 2048
        self.cache_slots = cache_slots
        self.dtype = dtype
        self.setting = setting
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._cache_kw = "past_key_values"
        self._caches: KvCacheLru[tuple[list[int], Any]] = KvCacheLru(cache_slots, self.name)
        self.last_stats: dict[str, float | int] = {}

    async def start(self) -> None:
        if self._model is None:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"setting `lm.backend` = transformers needs torch and transformers: pip install 'tandem[nlu]' ({exc})"
            ) from exc
        # Process-wide: the encoder shares this budget, so the setting is the whole torch share.
        torch.set_num_threads(self.n_threads)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.folder)
            self._model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=getattr(torch, self.dtype))
        except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model setting
            raise ConfigError(f"setting `{self.setting}`: cannot load model folder {self.folder}: {exc}") from exc
        self._model.eval()
        self._cache_kw = _cache_kwarg(self._model.generate)
        trained = getattr(self._model.config, "max_position_embeddings", None) or 2048
        self.context_window = min(self._context_setting or 4096, trained)
        log.info(
            "transformers model loaded name=%s threads=%d ctx=%d s=%.2f",
            self.name, self.n_threads, self.context_window, time.perf_counter() - started,
        )

    async def close(self) -> None:
        # Running generations are cancelled and waited for before the model goes away.
        if not await asyncio.to_thread(self._workers.stop_all):
            log.warning("a generation thread did not stop within 10 s model=%s", self.name)
        self._caches.clear()
        self._model = None

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a raw prompt, or of chat messages rendered with the model's template."""
        tok = self._tokenizer
        if isinstance(prompt, str):
            return tok.encode(prompt)
        if not getattr(tok, "chat_template", None):
            raise ModelError(f"{self.name} has no chat template; pass a plain string prompt instead")
        messages = [{"role": m.role, "content": m.content} for m in prompt]
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tok.encode(text, add_special_tokens=False)

    def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]:
        if self._model is None:
            raise ModelError(f"{self.name}: start() was not called")
        params = params.with_seed()
        return stream_in_worker(
            lambda control: self._generate(control, prompt, params, cache_key or ""),
            slots=self._slots,
            timeout_s=self.timeout_s,
            stops=params.stop,
            label=self.name,
            workers=self._workers,
        )

    def _generate(self, control: WorkerControl, prompt: Prompt, params: GenerationParams, key: str) -> None:
        import torch
        from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

        ids = self.encode_prompt(prompt)
        max_new = _fit(len(ids), params.max_new_tokens, self.context_window, self.name)
        streamer = _PieceStreamer(self._tokenizer, control)

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001 - transformers' signature
                done = streamer.done or control.cancelled.is_set()
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

        with self._lock:
            cache, cached = self._take_cache(key, ids)
            torch.manual_seed(params.seed)
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new,
                "repetition_penalty": params.repetition_penalty,
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
                self._cache_kw: cache if cache is not None else DynamicCache(config=self._model.config),
                "pad_token_id": self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            }
            if params.temperature > 0:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            bad = self._banned_ids(params)
            if bad:
                kwargs["bad_words_ids"] = bad
            input_ids = torch.tensor([ids])
            started = time.perf_counter()
            with torch.inference_mode():
                out = self._model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
                )
            sequence = out[0].tolist()
            used = kwargs[self._cache_kw]
            self._keep_cache(key, sequence[: used.get_seq_length()], used)
            self.last_stats = {
                "prompt_tokens": len(ids),
                "cached_tokens": cached,
                "new_tokens": len(sequence) - len(ids),
                "first_token_s": streamer.first_token_s - started if streamer.first_token_s else -1.0,
                "total_s": time.perf_counter() - started,
            }
        log.debug("generated model=%s %s", self.name, self.last_stats)

    def _take_cache(self, key: str, ids: list[int]) -> tuple[Any, int]:
        """The kept cache of `key` cropped to its common prefix with `ids` (at least one
        prompt token must remain uncached, so the model has logits to sample from)."""
        entry = self._caches.pop(key, None)
        if entry is None:
            return None, 0
        cached_ids, cache = entry
        common = 0
        for a, b in zip(cached_ids, ids, strict=False):
            if a != b:
                break
            common += 1
        keep = min(common, len(ids) - 1)
        if keep <= 0:
            return None, 0
        surplus = cache.get_seq_length() - keep
        if surplus > 0:
            cache.crop(-surplus)  # negative = tokens to remove, in transformers 4.x and 5.x alike
        return cache, keep

    def _keep_cache(self, key: str, ids: list[int], cache: Any) -> None:
        self._caches[key] = (ids, cache)

    def _banned_ids(self, params: GenerationParams) -> list[list[int]]:
        encode = self._tokenizer.encode
        return [ids for ids in (encode(v, add_special_tokens=False) for v in params.variants_of_banned_words()) if ids]


class _PieceStreamer:
    """transformers streamer that decodes new tokens and hands the text to the worker control.

    The whole answer is re-decoded at each token (answers are short) so that multi-byte
    characters split over tokens come out whole; text ending in U+FFFD waits for more.
    A stop string or a cancellation sets `done` instead of raising, so generate() ends
    through its stopping criterion and the KV cache survives for the next request.
    """

    def __init__(self, tokenizer: Any, control: WorkerControl) -> None:
        self._tokenizer = tokenizer
        self._control = control
        self._ids: list[int] = []
        self._sent = 0
        self._prompt_seen = False
        self.first_token_s: float | None = None
        self.done = False

    def _emit(self, piece: str) -> None:
        if self.done:
            return
        try:
            self._control.emit(piece)
        except (GenerationFinished, GenerationCancelled):
            self.done = True

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt itself
            self._prompt_seen = True
            return
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter()
        self._ids.extend(value.reshape(-1).tolist())
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        piece, self._sent = text[self._sent :], len(text)
        if piece:
            self._emit(piece)

    def end(self) -> None:
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if len(text) > self._sent:
            piece, self._sent = text[self._sent :], len(text)
            self._emit(piece)


def _cache_kwarg(generate: Any) -> str:
    """generate()'s name for a KV cache argument: recent transformers 5.x renamed
    past_key_values to `cache` through a deprecate_kwarg wrapper (the old name warns, and
    warnings fail our tests); older releases only know past_key_values. The wrapper does
    not change the signature, so its closure is where the new name shows."""
    fn = generate
    while fn is not None:
        if any(c.cell_contents == "cache" for c in (getattr(fn, "__closure__", None) or ()) if _is_str_cell(c)):
            return "cache"
        fn = getattr(fn, "__wrapped__", None)
    return "past_key_values"


def _is_str_cell(cell: Any) -> bool:
    try:
        return isinstance(cell.cell_contents, str)
    except ValueError:  # an empty cell
        return False


def _fit(prompt_tokens: int, max_new: int, window: int, name: str) -> int:
    """Shorten the answer to fit the context window; a prompt that alone fills it is an error."""
    if prompt_tokens >= window:
        raise ModelError(f"{name}: prompt of {prompt_tokens} tokens does not fit the context window of {window}")
    return min(max_new, window - prompt_tokens)
