"""LazyLanguageModel: builds and loads the configured model in the background or on first use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from bot.core.errors import ConfigError, ModelUnavailable
from bot.models.base import GenerationParams, LanguageModel, Prompt

log = logging.getLogger(__name__)


class LazyLanguageModel:
    """A LanguageModel whose `factory` (join, convert, construct: blocking) runs in a thread
    on the first `start()`; a missing or broken model becomes ModelUnavailable, which the
    skills answer politely, and the next request tries again."""

    def __init__(self, factory: Callable[[], LanguageModel], *, name: str = "lm", context_window: int = 2048) -> None:
        self._factory = factory
        self._inner: LanguageModel | None = None
        self._lock = asyncio.Lock()
        self.name = name
        self._context_window = context_window

    @property
    def context_window(self) -> int:
        return self._inner.context_window if self._inner is not None else self._context_window

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    async def start(self) -> None:
        if self._inner is not None:
            return
        async with self._lock:
            if self._inner is not None:
                return
            try:
                inner = await asyncio.to_thread(self._factory)
                await inner.start()
            except ConfigError as exc:
                log.error("language model unavailable: %s", exc)
                raise ModelUnavailable(str(exc)) from exc
            self._inner = inner
            self.name = getattr(inner, "name", self.name)
            log.info("language model loaded name=%s ctx=%d", self.name, inner.context_window)

    def _model(self) -> LanguageModel:
        if self._inner is None:
            raise ModelUnavailable("the language model is not loaded yet; call start() first")
        return self._inner

    def count_tokens(self, text: str) -> int:
        return self._model().count_tokens(text)

    async def stream(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
                     ) -> AsyncIterator[str]:
        await self.start()
        inner_stream = self._model().stream(prompt, params, cache_key=cache_key)
        try:
            async for piece in inner_stream:
                yield piece
        finally:
            aclose = getattr(inner_stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def generate(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None) -> str:
        await self.start()
        return await self._model().generate(prompt, params, cache_key=cache_key)

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
            self._inner = None
