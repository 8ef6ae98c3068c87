"""The llama.cpp backend: a GGUF file run by llama-cpp-python, the fast path on CPU."""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError, ModelError
from bot.models.base import GenerationParams, ModelBase, Prompt
from bot.models.cpu import cpu_flags, has_amx
from bot.models.kv_caches import KvCacheLru
from bot.models.threaded import WorkerControl, WorkerSet, stream_in_worker

log = logging.getLogger(__name__)

# Sampling the Params do not expose: llama.cpp's own defaults, which suit small models.
_TOP_K = 40
_MIN_P = 0.05


@dataclass
class _Slot:
    """One llama.cpp context (a Llama object) and the cache_key whose tokens it holds."""

    llm: Any
    key: str | None = None
    busy: bool = False
    used_at: float = 0.0


@dataclass(frozen=True)
class _SavedSequence:
    """A story's KV cache copied out of a context: llama.cpp's sequence state and its tokens."""

    state: Any  # ctypes uint8 array
    size: int
    tokens: Any  # numpy int array


# llama.cpp's log callback; kept referenced here, since the C side only holds a pointer.
_native_log_callback: Any = None
# Llama() reads llama_model_default_params() while loading; swapped only under this lock.
_params_lock = threading.Lock()


def weight_repack_enabled(setting: str, flags: set[str] | None = None) -> bool:
    """Whether llama.cpp may repack weights for this CPU (`lm.weight_repack`): "auto" is off on
    CPUs with AMX, whose repack path crashes in llama.cpp (issue 20824), and on elsewhere."""
    if setting in ("on", "off"):
        return setting == "on"
    return not has_amx(cpu_flags() if flags is None else flags)


def open_llama(*, weight_repack: bool = True, **kwargs: Any) -> Any:
    """A llama_cpp.Llama that leaves the process's stdout and stderr alone.

    With verbose=False, llama-cpp-python silences loading by pointing file descriptors 1 and
    2 at /dev/null for the whole process, which swallows what other threads print meanwhile
    (the terminal chat's replies, the server's logs). So: verbose=True, llama.cpp's own log
    routed to Python logging at DEBUG, and the library's few Python prints captured.
    """
    import contextlib
    import io

    import llama_cpp

    global _native_log_callback
    if _native_log_callback is None:
        _native_log_callback = _make_native_log_callback()
        llama_cpp.llama_log_set(_native_log_callback, None)
    with _params_lock, contextlib.redirect_stderr(io.StringIO()):
        if weight_repack:
            llm = llama_cpp.Llama(verbose=True, **kwargs)
        else:
            # llama-cpp-python does not expose use_extra_bufts; Llama() takes its model params from
            # this function, so for the duration of the load it returns them with repacking off.
            module = llama_cpp.llama_cpp
            defaults = module.llama_model_default_params

            def without_repack() -> Any:
                params = defaults()
                params.use_extra_bufts = False
                return params

            module.llama_model_default_params = without_repack
            try:
                llm = llama_cpp.Llama(verbose=True, **kwargs)
            finally:
                module.llama_model_default_params = defaults
    llm.verbose = False  # later calls (generation) print nothing either
    return llm


def _make_native_log_callback() -> Any:
    import llama_cpp

    native = logging.getLogger("llama_cpp.native")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        if native.isEnabledFor(logging.DEBUG):
            native.debug("%s", text.decode("utf-8", "replace").rstrip())

    return callback


class LlamaContextPool:
    """Llama contexts (one per concurrent generation) plus saved KV caches by cache_key.

    llama.cpp keeps the KV cache of the last prompt a context evaluated and reuses its
    longest common prefix. A story's next prompt mostly repeats its last one, so when a
    context passes from one story to another, the leaving story's sequence state (its KV
    cache, ~30 MB per 1k tokens for the 1.5B model) is copied out and the arriving story's
    is copied back in, LRU-bounded to `cache_slots` saved stories. Copying beats keeping a
    Llama object per story: every Llama loads its own copy of the weights (llama.cpp
    repacks Q4_K weights into process memory: +1.8 GB per context for the default model).
    """

    def __init__(self, factory, size: int, cache_slots: int, name: str = "llama.cpp") -> None:
        self._factory = factory
        self.size = size
        self.cache_slots = cache_slots
        self._slots: list[_Slot] = []
        self._saved: KvCacheLru[_SavedSequence] = KvCacheLru(cache_slots, name)
        self._lock = threading.Lock()

    @property
    def contexts(self) -> int:
        return len(self._slots)

    @property
    def saved_keys(self) -> list[str]:
        return list(self._saved)

    def add(self, llm: Any) -> None:
        with self._lock:
            self._slots.append(_Slot(llm))

    def acquire(self, key: str) -> _Slot:
        with self._lock:
            idle = [s for s in self._slots if not s.busy]
            slot = next((s for s in idle if s.key == key), None)
            if slot is None and idle:
                slot = min(idle, key=lambda s: s.used_at)
            if slot is not None:
                slot.busy = True
            elif len(self._slots) < self.size:
                slot = _Slot(None, busy=True)  # reserve the place before the slow load
                self._slots.append(slot)
            else:  # only when more generations run than contexts, which the semaphore prevents
                raise ModelError("no idle llama.cpp context")
        if slot.llm is None:
            try:
                slot.llm = self._factory()
            except BaseException:
                with self._lock:
                    self._slots.remove(slot)
                raise
        if slot.key != key:
            self._switch(slot, key)
        return slot

    def _switch(self, slot: _Slot, key: str) -> None:
        """Save the leaving story's KV cache and bring back the arriving one's, if kept."""
        import ctypes

        import llama_cpp

        llm = slot.llm
        ctx = llm._ctx.ctx
        with self._lock:  # taken out first, so saving the leaving story cannot evict it
            saved = self._saved.pop(key, None)
        if slot.key is not None and llm.n_tokens > 0:
            size = llama_cpp.llama_state_seq_get_size(ctx, 0)
            state = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(ctx, state, size, 0)
            with self._lock:
                self._saved[slot.key] = _SavedSequence(state, written, llm.input_ids[: llm.n_tokens].copy())
        slot.key = key
        if saved is None:
            return  # the context keeps what it has: a shared prefix (system prompt) still helps
        llm._ctx.kv_cache_clear()
        if llama_cpp.llama_state_seq_set_data(ctx, saved.state, saved.size, 0) != saved.size:
            log.warning("kv cache restore failed key=%s; evaluating the prompt afresh", key)
            llm.reset()
            llm._ctx.kv_cache_clear()
            return
        n = len(saved.tokens)
        llm.input_ids[:n] = saved.tokens
        llm.n_tokens = n
        # Logits are not part of the sequence state: generate() must re-run the last token.
        llm._requires_eval = True

    def release(self, slot: _Slot) -> None:
        with self._lock:
            slot.busy = False
            slot.used_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.llm is not None and not slot.busy:
                    slot.llm.close()
            self._slots.clear()
            self._saved.clear()


class LlamaCppModel(ModelBase):
    """A GGUF model on llama.cpp: chat template from the GGUF header, KV caches pooled by cache_key."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        n_threads: int | None = None,
        context_window: int | None = None,
        max_concurrent: int = 1,
        timeout_s: float = 120.0,
        cache_slots: int = 2,
        weight_repack: str = "auto",
        setting: str = "lm.model",
    ) -> None:
        super().__init__(max_concurrent=max_concurrent, timeout_s=timeout_s)
        self._workers = WorkerSet()
        self.path = Path(path)
        self.weight_repack = weight_repack_enabled(weight_repack)
        self.name = name or self.path.stem
        # Default: all cores but one. llama.cpp's threads spin-wait for each other, so on a
        # machine that also runs the encoder and the server, one descheduled thread stalls
        # all of them (measured: 2 threads fell from 31 to 15 tok/s beside one encoder).
        self.n_threads = n_threads or max(1, (os.cpu_count() or 1) - 1)
        self.context_window = context_window or 4096
        self._context_setting = context_window
        self.setting = setting
        # Every running generation needs its own context (and, with repacked weights, its own
        # copy of them); other stories wait as saved KV caches.
        self.pool = LlamaContextPool(self._new_context, max_concurrent, cache_slots, self.name)
        self._formatter: Any = None
        self._eog: Any = None
        self.last_stats: dict[str, float | int] = {}

    def _new_context(self) -> Any:
        import llama_cpp

        started = time.perf_counter()
        llm = open_llama(
            model_path=str(self.path),
            n_ctx=self.context_window,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            weight_repack=self.weight_repack,
        )
        log.info(
            "llama.cpp context loaded model=%s ctx=%d threads=%d repack=%s s=%.2f",
            self.name, self.context_window, self.n_threads, self.weight_repack, time.perf_counter() - started,
        )
        return llm

    async def start(self) -> None:
        if self.pool.contexts == 0:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ConfigError(
                "setting `lm.backend` = llama_cpp needs llama-cpp-python: pip install 'tandem[llama]' "
                f"(builds from source, ~8 min on 2 cores), or set lm.backend = \"transformers\" ({exc})"
            ) from exc
        if not self.path.is_file():
            raise ConfigError(f"setting `{self.setting}`: GGUF file {self.path} does not exist")
        try:
            if self._context_setting is None:
                # The model's trained length, capped to bound the KV cache of every pooled context.
                probe = open_llama(model_path=str(self.path), vocab_only=True)
                self.context_window = min(4096, probe._model.n_ctx_train() or 4096)
                probe.close()
            llm = self._new_context()
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError(f"setting `{self.setting}`: llama.cpp cannot load GGUF file {self.path}: {exc}") from exc
        self.pool.add(llm)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            text = llm._model.token_get_text
            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=text(eos) if eos != -1 else "", bos_token=text(bos) if bos != -1 else ""
            )
        vocab = llm._model.vocab
        self._eog = lambda token: llama_cpp.llama_vocab_is_eog(vocab, token)

    async def close(self) -> None:
        # Running generations are cancelled and waited for before the model goes away.
        if not await asyncio.to_thread(self._workers.stop_all):
            log.warning("a generation thread did not stop within 10 s model=%s", self.name)
        self.pool.close()

    def count_tokens(self, text: str) -> int:
        llm = self._any_context()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _any_context(self) -> Any:
        if self.pool.contexts == 0:
            raise ModelError(f"{self.name}: start() was not called")
        return self.pool._slots[0].llm

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a raw prompt, or of chat messages rendered with the GGUF's template."""
        llm = self._any_context()
        if isinstance(prompt, str):
            return llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if self._formatter is None:
            raise ModelError(f"{self.name} has no chat template; pass a plain string prompt instead")
        rendered = self._formatter(messages=[{"role": m.role, "content": m.content} for m in prompt])
        # The template writes BOS itself, so tokenising must not add another.
        return llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)

    def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]:
        if self.pool.contexts == 0:
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
        tokens = self.encode_prompt(prompt)
        if len(tokens) >= self.context_window:
            raise ModelError(
                f"{self.name}: prompt of {len(tokens)} tokens does not fit the context window of {self.context_window}"
            )
        max_new = min(params.max_new_tokens, self.context_window - len(tokens))
        slot = self.pool.acquire(key)
        llm = slot.llm
        started = time.perf_counter()
        cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens], tokens)
        banned = self._banned_processor(llm, params)
        llm.set_seed(params.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tokens_out = 0
        first_token_s = -1.0
        steps = llm.generate(
            tokens,
            top_k=_TOP_K,
            top_p=params.top_p,
            min_p=_MIN_P,
            temp=params.temperature,
            repeat_penalty=params.repetition_penalty,
            logits_processor=banned,
        )
        try:
            for token in steps:
                if tokens_out == 0:
                    first_token_s = time.perf_counter() - started
                if self._eog(token):
                    break
                tokens_out += 1
                piece = decoder.decode(llm.detokenize([token]))
                if piece:
                    control.emit(piece)
                if tokens_out >= max_new:
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                control.emit(tail)
        finally:
            steps.close()
            self.pool.release(slot)
            self.last_stats = {
                "prompt_tokens": len(tokens),
                "cached_tokens": cached,
                "new_tokens": tokens_out,
                "first_token_s": first_token_s,
                "total_s": time.perf_counter() - started,
            }
            log.debug("generated model=%s key=%s %s", self.name, key, self.last_stats)

    def _banned_processor(self, llm: Any, params: GenerationParams) -> Any:
        variants = params.variants_of_banned_words()
        if not variants:
            return None
        from llama_cpp import LogitsProcessorList

        seqs = [llm.tokenize(v.encode("utf-8"), add_bos=False, special=False) for v in variants]
        return LogitsProcessorList([BannedSequences([s for s in seqs if s])])


class BannedSequences:
    """llama.cpp logits processor: forbids the last token of a banned token sequence once
    the tokens before it have been generated (a one-token word is always forbidden);
    the same rule as transformers' bad_words_ids."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        self._single = sorted({s[0] for s in sequences if len(s) == 1})
        self._multi = [list(s) for s in sequences if len(s) > 1]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._single:
            scores[self._single] = -np.inf
        for seq in self._multi:
            head = len(seq) - 1
            if len(input_ids) >= head and list(input_ids[-head:]) == seq[:-1]:
                scores[seq[-1]] = -np.inf
        return scores
