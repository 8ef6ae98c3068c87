"""The OpenAI-compatible HTTP backend: streams from vLLM, llama.cpp server, TGI or Ollama over SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from bot.core.errors import ModelError, ModelTimeout, ModelUnavailable
from bot.models.base import GenerationParams, ModelBase, Prompt, StopFilter
from bot.models.token_count import (
    EstimateCounter,
    ServerTokenCounter,
    TokenCounter,
    TokenizerFileCounter,
    estimate_tokens,
    find_tokenize_endpoint,
)

log = logging.getLogger(__name__)
# Names the conversation or story a request continues, for story-sticky routing to model servers.
CACHE_KEY_HEADER = "X-Tandem-Cache-Key"


class OpenAiModel(ModelBase):
    """A model behind an OpenAI-compatible server.

    Chat prompts go to /v1/chat/completions (the server applies the chat template), raw
    prompts to /v1/completions. `base_url` is the server root or its /v1 root. The server
    sees `cache_key` as `user` and in the `X-Tandem-Cache-Key` header: a balancer in front of several
    model servers routes on the header (nginx: `hash $http_x_tandem_cache_key consistent`), so a
    story's requests reach the server whose prefix cache holds it, whichever Tandem worker sends them.
    Banned words need token ids the client does not have, so they are not sent; a warning
    says so once.

    Tokens are counted with the served model's tokenizer: the `tokenizer` file (a tokenizer.json)
    when one is given, else the server's tokenize call (llama.cpp server, vLLM, llama-cpp-python,
    TGI), found at `start()`; `count_tokens` never waits on the network (see token_count.py).
    Without either, counts are estimated, erring high, and a warning says so once.
    """

    def __init__(
        self,
        base_url: str,
        *,
        served_model: str | None = None,
        api_key: str | None = None,
        context_window: int | None = None,
        max_concurrent: int = 1,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        tokenizer: str | Path | None = None,
    ) -> None:
        super().__init__(max_concurrent=max_concurrent, timeout_s=timeout_s)
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else root + "/v1"
        self.served_model = served_model
        self.name = served_model or self.base_url
        self.context_window = context_window or 4096
        self._api_key = api_key
        self._connect_timeout_s = connect_timeout_s
        self._session: Any = None
        self._warned_banned = False
        self._tokenizer_file = Path(tokenizer).expanduser() if tokenizer else None
        self._counter: TokenCounter | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def start(self) -> None:
        import aiohttp

        if self._session is None:
            # No total timeout on the session: a stream may legitimately last minutes;
            # stream() enforces its own deadline per read.
            self._session = aiohttp.ClientSession(
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            )
        if self.served_model is None:
            self.served_model = await self._first_model()
            self.name = self.served_model
        if self._counter is None:
            self._counter = await self._open_counter()
        log.info("openai-compatible model ready url=%s model=%s", self.base_url, self.served_model)

    async def _open_counter(self) -> TokenCounter:
        if self._tokenizer_file is not None:
            return await asyncio.to_thread(TokenizerFileCounter.load, self._tokenizer_file)
        root = self.base_url.removesuffix("/v1")
        try:
            endpoint = await find_tokenize_endpoint(self._session, root, self.served_model,
                                                    timeout_s=self._connect_timeout_s)
        except ModelUnavailable as exc:  # with lm.served_model set, start() needs no server
            return EstimateCounter(self.name, f"the server was not reachable at start-up ({exc})")
        if endpoint is not None:
            return ServerTokenCounter(self._session, endpoint, timeout_s=self._connect_timeout_s)
        return EstimateCounter(self.name, f"the server at {root} has no tokenize call Tandem knows")

    async def _first_model(self) -> str:
        import aiohttp

        url = f"{self.base_url}/models"
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                async with self._session.get(url) as resp:
                    if resp.status != 200:
                        raise ModelUnavailable(
                            f"setting `lm.model` = {self.base_url}: GET {url} answered {resp.status}"
                        )
                    data = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ModelUnavailable(
                f"setting `lm.model` = {self.base_url}: server not reachable ({exc!r})"
            ) from exc
        models = data.get("data") or []
        if not models:
            raise ModelUnavailable(
                f"setting `lm.model` = {self.base_url}: the server lists no model; set lm.served_model"
            )
        return models[0]["id"]

    async def close(self) -> None:
        counter, self._counter = self._counter, None
        if isinstance(counter, ServerTokenCounter):
            await counter.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def count_tokens(self, text: str) -> int:
        """`text`'s tokens in the served model's tokenizer (estimated, erring high, before `start()`,
        without a tokenizer, and for words the server has not counted yet)."""
        if self._counter is None:
            return estimate_tokens(text)
        return self._counter.count(text)

    def _counting_paused(self) -> contextlib.AbstractAsyncContextManager[None]:
        if isinstance(self._counter, ServerTokenCounter):
            return self._counter.generation()
        return contextlib.nullcontext()

    async def prepare_counts(self, texts: Iterable[str]) -> None:
        """Have the server count the words of `texts` now, so that `count_tokens` of them (and of
        any part of them) is exact at once; nothing to do with a tokenizer file or without a server."""
        if isinstance(self._counter, ServerTokenCounter):
            await self._counter.prepare(texts)

    def _body(self, prompt: Prompt, params: GenerationParams) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.served_model,
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            # Not in OpenAI's API: vLLM and TGI read repetition_penalty, llama.cpp repeat_penalty.
            "repetition_penalty": params.repetition_penalty,
            "repeat_penalty": params.repetition_penalty,
        }
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # OpenAI's limit; the client filter applies all
        if isinstance(prompt, str):
            body["prompt"] = prompt
            return "completions", body
        body["messages"] = [{"role": m.role, "content": m.content} for m in prompt]
        return "chat/completions", body

    async def stream(
        self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
    ) -> AsyncIterator[str]:
        import aiohttp

        if self._session is None:
            raise ModelError(f"{self.name}: start() was not called")
        params = params.with_seed()
        if params.banned_words and not self._warned_banned:
            log.warning("banned_words are not supported by the openai backend; ignored model=%s", self.name)
            self._warned_banned = True
        endpoint, body = self._body(prompt, params)
        headers = {}
        if cache_key:
            body["user"] = cache_key
            headers[CACHE_KEY_HEADER] = cache_key
        url = f"{self.base_url}/{endpoint}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        stops = StopFilter(params.stop)

        def remaining() -> float:
            left = deadline - loop.time()
            if left <= 0:
                raise ModelTimeout(f"{self.name}: generation took longer than {self.timeout_s:g} s")
            return left

        try:
            async with asyncio.timeout(remaining()):
                await self._slots.acquire()
        except TimeoutError:
            raise ModelTimeout(f"{self.name}: no free generation slot within {self.timeout_s:g} s") from None
        try:
            # A server that ends a running stream on any other request gets no tokenize call meanwhile.
            async with self._counting_paused():
                try:
                    async with asyncio.timeout(remaining()):
                        resp = await self._session.post(url, json=body, headers=headers)
                except TimeoutError:
                    raise ModelTimeout(f"{self.name}: no answer from {url} within {self.timeout_s:g} s") from None
                except aiohttp.ClientError as exc:
                    raise ModelUnavailable(f"{self.name}: cannot reach {url}: {exc!r}") from exc
                # Closing the response (on cancel, stop or error) drops the connection, which
                # tells the server to stop generating.
                async with resp:
                    if resp.status != 200:
                        detail = (await resp.text())[:300]
                        raise ModelError(f"{self.name}: {url} answered {resp.status}: {detail}")
                    async for piece in self._read_sse(resp, remaining):
                        text = stops.feed(piece)
                        if text:
                            yield text
                        if stops.stopped:
                            return
                    tail = stops.flush()
                    if tail:
                        yield tail
        finally:
            self._slots.release()

    async def _read_sse(self, resp: Any, remaining) -> AsyncIterator[str]:
        import aiohttp

        finished = False  # a choice reported finish_reason: an end without [DONE] is then fine
        while True:
            try:
                async with asyncio.timeout(remaining()):
                    line = await resp.content.readline()
            except TimeoutError:
                raise ModelTimeout(f"{self.name}: generation took longer than {self.timeout_s:g} s") from None
            except aiohttp.ClientError as exc:
                raise ModelError(f"{self.name}: stream broken: {exc!r}") from exc
            if not line:
                if finished:
                    return
                raise ModelError(f"{self.name}: stream ended without [DONE]")
            line = line.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": ping"), event names
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError as exc:
                raise ModelError(f"{self.name}: bad stream event {data[:100]!r}") from exc
            if "error" in event:
                raise ModelError(f"{self.name}: server error: {event['error']}")
            for choice in event.get("choices") or []:
                text = choice.get("text")
                if text is None:
                    text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
                finished = finished or bool(choice.get("finish_reason"))
