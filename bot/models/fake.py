"""FakeLanguageModel: deterministic scripted output for fast unit tests of skills and the runtime."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from bot.core.errors import ModelError, ModelTimeout
from bot.models.base import ChatMessage, GenerationParams, ModelBase, Prompt, StopFilter

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class FakeCall:
    """One request the fake received, for assertions."""

    prompt: Prompt
    params: GenerationParams
    cache_key: str | None
    text: str = ""
    cancelled: bool = False


@dataclass
class FakeScript:
    """What the fake answers.

    `outputs` are returned in turn (the last one repeats); `respond(prompt, params)` wins
    over them when given. `fail_after` raises ModelError after that many pieces (to test
    partial output); `delay_s` is slept before every piece, so timeouts and cancellation
    can be exercised. With `seeded=True` the seed is appended as " #<seed>" so callers
    can tell that retries differ.
    """

    outputs: Sequence[str] = ("Once upon a time, a fox found a lantern.",)
    respond: Callable[[Prompt, GenerationParams], str] | None = None
    delay_s: float = 0.0
    fail_after: int | None = None
    seeded: bool = False
    calls: list[FakeCall] = field(default_factory=list)


class FakeLanguageModel(ModelBase):
    """A LanguageModel that streams scripted text word by word; honours the same
    max_concurrent, timeout_s, stop, max_new_tokens (in words) and cancellation rules as
    the real backends, so skills are tested against the real contract."""

    def __init__(
        self,
        outputs: Sequence[str] | str | None = None,
        *,
        script: FakeScript | None = None,
        delay_s: float = 0.0,
        max_concurrent: int = 1,
        timeout_s: float = 30.0,
        context_window: int = 2048,
        name: str = "fake",
    ) -> None:
        super().__init__(max_concurrent=max_concurrent, timeout_s=timeout_s)
        if script is None:
            script = FakeScript(delay_s=delay_s)
            if outputs is not None:
                script.outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        self.script = script
        self.name = name
        self.context_window = context_window
        self.started = False
        self.closed = False
        self.active = 0
        self.peak_active = 0
        self._served = 0

    @property
    def calls(self) -> list[FakeCall]:
        return self.script.calls

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _next_text(self, prompt: Prompt, params: GenerationParams) -> str:
        script = self.script
        if script.respond is not None:
            text = script.respond(prompt, params)
        else:
            text = script.outputs[min(self._served, len(script.outputs) - 1)]
        self._served += 1
        if script.seeded:
            text = f"{text} #{params.seed}"
        return text

    async def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]:
        params = params.with_seed()
        call = FakeCall(prompt=_freeze(prompt), params=params, cache_key=cache_key)
        self.script.calls.append(call)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ModelTimeout(f"{self.name}: no free generation slot within {self.timeout_s:g} s") from None
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        stops = StopFilter(params.stop)
        try:
            words = _WORDS.findall(self._next_text(prompt, params))[: params.max_new_tokens]
            for index, word in enumerate(words):
                if self.script.fail_after is not None and index >= self.script.fail_after:
                    raise ModelError(f"{self.name}: scripted failure after {index} pieces")
                if self.script.delay_s:
                    if loop.time() + self.script.delay_s > deadline:
                        raise ModelTimeout(f"{self.name}: generation took longer than {self.timeout_s:g} s")
                    await asyncio.sleep(self.script.delay_s)
                piece = stops.feed(word)
                if piece:
                    call.text += piece
                    yield piece
                if stops.stopped:
                    return
            tail = stops.flush()
            if tail:
                call.text += tail
                yield tail
        except (GeneratorExit, asyncio.CancelledError):
            call.cancelled = True
            raise
        finally:
            self.active -= 1
            self._slots.release()

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True


def _freeze(prompt: Prompt) -> Prompt:
    if isinstance(prompt, str):
        return prompt
    return tuple(ChatMessage(m.role, m.content) for m in prompt)
