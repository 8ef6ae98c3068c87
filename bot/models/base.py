"""The LanguageModel protocol and its request types; framework-free (no torch, llama_cpp, aiohttp)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]

# Seeds are drawn from the OS so that a retry or a second candidate samples differently;
# 2**31 keeps them valid for every backend (llama.cpp takes uint32, torch int64).
_SEEDS = random.SystemRandom()


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat prompt; rendered with the model's chat template."""

    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one request.

    `stop`: generation ends before any of these strings (not included in the output).
    `banned_words`: words the model may not produce (with or without a leading space,
    lower-case or capitalised); backends without token access ignore them with a warning.
    `seed`: None draws a fresh random seed per request, so retries differ.
    """

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    banned_words: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        # Lists from callers or config files become tuples, so params stay hashable.
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "banned_words", tuple(self.banned_words))
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError("temperature >= 0, 0 < top_p <= 1 and repetition_penalty > 0 are required")

    def with_seed(self) -> GenerationParams:
        """These params with a concrete seed: the given one, or a fresh random one."""
        if self.seed is not None:
            return self
        return replace(self, seed=_SEEDS.randrange(1, 2**31))

    def variants_of_banned_words(self) -> list[str]:
        """Each banned word as it can appear in text: bare, after a space, capitalised."""
        seen: dict[str, None] = {}
        for word in self.banned_words:
            word = word.strip()
            if not word:
                continue
            for form in (word, word.lower(), word.capitalize()):
                seen.setdefault(form, None)
                seen.setdefault(" " + form, None)
        return list(seen)


Prompt = str | Sequence[ChatMessage]


@runtime_checkable
class LanguageModel(Protocol):
    """A generative model behind one interface, whatever the backend.

    A `str` prompt is continued as raw text (story continuation); a list of ChatMessage
    is rendered with the model's chat template. `cache_key` (e.g. a story id) lets the
    backend keep that conversation's KV cache warm, since its next prompt mostly repeats
    this one. `stream` yields text pieces as they are generated; on an error or timeout
    mid-stream the pieces already yielded stand, and the error is raised after them.
    """

    name: str
    context_window: int

    def count_tokens(self, text: str) -> int: ...

    def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]: ...

    async def generate(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class GenerationStats:
    """What one generation cost; backends log it and benchmarks read it."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    new_tokens: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0
    finish: str = "length"
    extra: dict[str, object] = field(default_factory=dict)


class StopFilter:
    """Holds back text that may be the start of a stop string; says when one was reached.

    Backends feed it decoded pieces; it returns what is safe to show the user now.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""  # nothing after a stop string is shown, even if a backend runs on
        if not self._stops:
            return piece
        text = self._pending + piece
        best = -1
        for stop in self._stops:
            at = text.find(stop)
            if at != -1 and (best == -1 or at < best):
                best = at
        if best != -1:
            self.stopped = True
            self._pending = ""
            return text[:best]
        hold = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        self._pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """The held-back tail, once generation ended without completing a stop string."""
        tail, self._pending = self._pending, ""
        return tail


class ModelBase:
    """Shared plumbing of the backends: the concurrency limit and `generate()` over `stream()`."""

    name: str = "model"
    context_window: int = 2048

    def __init__(self, *, max_concurrent: int = 1, timeout_s: float = 120.0) -> None:
        # asyncio.Semaphore binds to a loop only on first contended use, so this is safe here.
        self._slots = asyncio.Semaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self.timeout_s = timeout_s

    def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]:  # pragma: no cover - replaced by backends
        raise NotImplementedError

    async def generate(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> str:
        pieces = [piece async for piece in self.stream(prompt, params, cache_key=cache_key)]
        return "".join(pieces)

    async def start(self) -> None:
        """Load the model; a failure raises ConfigError naming the setting and the file."""

    async def close(self) -> None:
        """Release the model and its threads or connections."""
