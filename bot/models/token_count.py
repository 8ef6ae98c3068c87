"""Token counts for a model served over HTTP: from its tokenizer.json, its server's tokenize endpoint, or an estimate.

`count(text)` is synchronous everywhere (prompt builders call it many times while they fit a
prompt), so nothing here waits on the network when counting. The server counter keeps the count
of every piece of text it has seen (a word with the whitespace before it) and asks the server
for the pieces it has not seen in the background; until the answer is in, such a piece is
estimated. Tokens never span two pieces (see `pieces`), so the sum is the real count.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.core.errors import ConfigError, ModelError, ModelUnavailable

log = logging.getLogger(__name__)

# A word (a run of non-whitespace) with the whitespace before it, or whitespace alone at the end.
_PIECE = re.compile(r"\s*\S+|\s+")
# Letters per token of an ASCII word, set low: SmolLM2 (English, 49k vocabulary) reads 4.3
# characters a token in English prose, rare and foreign words (German: 2.5) far fewer.
ASCII_LETTERS_PER_TOKEN = 3.0
# Tokens per character of scripts that byte-level vocabularies split finely, set at or above the
# most any model in use needs: Cyrillic 0.97 per letter for SmolLM2 (Qwen2.5: ~0.35), CJK 2.1 per
# character for SmolLM2 (Qwen2.5: ~0.8). Other non-ASCII characters count one token per UTF-8
# byte, which no byte-level BPE or byte-fallback SentencePiece exceeds.
CYRILLIC_TOKENS = 1.0
ACCENTED_LATIN_TOKENS = 1.0
CJK_TOKENS = 2.5


def _is_cjk(code: int) -> bool:
    return 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF \
        or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF


def estimate_piece(piece: str) -> int:
    """A count of `piece` that errs high: by characters per script (see the constants above)."""
    word = piece.lstrip()
    spaces = len(piece) - len(word)
    tokens = 0.0 if spaces == 0 or piece[:spaces] == " " else float(spaces)  # " word" is one token
    ascii_letters = 0
    for char in word:
        code = ord(char)
        if code < 128:
            if char.isalpha():
                ascii_letters += 1
            else:
                tokens += 1  # digits go one by one in Llama 3, Qwen and SmolLM2; punctuation nearly so
        elif 0x400 <= code <= 0x52F:
            tokens += CYRILLIC_TOKENS
        elif 0xC0 <= code <= 0x24F and char.isalpha():
            tokens += ACCENTED_LATIN_TOKENS
        elif _is_cjk(code):
            tokens += CJK_TOKENS
        else:
            tokens += len(char.encode("utf-8"))
    return math.ceil(tokens + ascii_letters / ASCII_LETTERS_PER_TOKEN)


def estimate_tokens(text: str) -> int:
    """The estimated count of a whole text."""
    return sum(estimate_piece(piece) for _, piece in pieces(text))


def _anchor(previous: str) -> str:
    """What a piece is counted after, standing for the character before it in the text: the
    character itself, except that any letter is "a" and any digit "0" (whitespace after a
    letter or a digit starts a new token in every tokenizer, so which one makes no difference)."""
    if previous.isalpha():
        return "a"
    if previous.isdigit():
        return "0"
    return previous


def pieces(text: str) -> Iterator[tuple[str, str]]:
    """(anchor, piece) for each piece of `text`: the piece's count is tokens(anchor + piece) -
    tokens(anchor). Tokenizers split before whitespace that follows a non-whitespace character
    (byte-level BPE's pre-tokenising patterns, SentencePiece's word-start marks, WordPiece), so no
    token spans two pieces; the anchor covers the one exception, punctuation that takes the
    newlines after it into its token (Qwen's and Llama 3's ".\\n\\n")."""
    previous = ""
    for match in _PIECE.finditer(text):
        piece = match.group()
        yield (_anchor(previous) if previous else ""), piece
        previous = piece[-1]


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class EstimateCounter:
    """Counts by `estimate_tokens`; says once, when it is first used, that it is estimating and why."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        self._said = False

    def count(self, text: str) -> int:
        if not self._said:
            self._said = True
            log.warning("token counts are estimated (erring high: fewer story passages fit the prompt) "
                        "model=%s: %s; set lm.tokenizer to the model's tokenizer.json for exact counts",
                        self.model, self.reason)
        return estimate_tokens(text)


class TokenizerFileCounter:
    """Counts with the model's own tokenizer.json (Hugging Face `tokenizers`), special tokens excluded."""

    def __init__(self, tokenizer: Any, path: Path) -> None:
        self._tokenizer = tokenizer
        self.path = path

    @classmethod
    def load(cls, path: Path, *, setting: str = "lm.tokenizer") -> TokenizerFileCounter:
        """Read the file (blocking, a fraction of a second); a missing or bad file is a ConfigError."""
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
        except ImportError as exc:
            raise ConfigError(f"setting `{setting}` = {path}: needs the tokenizers package ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - a missing file or one tokenizers cannot read
            raise ConfigError(f"setting `{setting}` = {path}: not a readable tokenizer.json: {exc}") from exc
        # A file saved for an encoder may cut or pad every text to its length (MiniLM: 128).
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(tokenizer, path)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True)
class TokenizeEndpoint:
    """A server's tokenize call: `server` names the kind, `body(text)` is the JSON it takes.
    `interrupts_generation`: the server ends a running stream when any other request arrives
    (llama-cpp-python's server does, unless started with `--interrupt_requests False`)."""

    server: str
    url: str
    body: Callable[[str], dict[str, Any]]
    interrupts_generation: bool = False


def _tokenize_calls(root: str, model: str | None) -> list[TokenizeEndpoint]:
    """The tokenize calls of the servers Tandem talks to, in the order they are tried. A server
    refuses (400, 404, 422) a body it does not understand; llama.cpp's server answers a body
    without `content` with no tokens, so it is tried first and an empty answer means "not this one"."""
    return [
        TokenizeEndpoint("llama.cpp server", f"{root}/tokenize", lambda text: {"content": text, "add_special": False}),
        TokenizeEndpoint("vLLM", f"{root}/tokenize",
                         lambda text: {"model": model, "prompt": text, "add_special_tokens": False}),
        TokenizeEndpoint("llama-cpp-python", f"{root}/extras/tokenize", lambda text: {"model": model, "input": text},
                         interrupts_generation=True),
        TokenizeEndpoint("text-generation-inference", f"{root}/tokenize", lambda text: {"inputs": text}),
    ]


def _token_total(data: Any) -> int | None:
    """The number of tokens in a tokenize answer: {"tokens": [...]} (llama.cpp, vLLM,
    llama-cpp-python), {"count": n}, or a list with one entry per token (TGI)."""
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        if isinstance(data.get("count"), int):
            return data["count"]
    return None


async def _post_tokenize(session: Any, endpoint: TokenizeEndpoint, text: str, timeout_s: float) -> int:
    import aiohttp

    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(endpoint.url, json=endpoint.body(text)) as resp:
                if resp.status != 200:
                    raise ModelError(f"{endpoint.url} answered {resp.status}")
                data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ModelUnavailable(f"{endpoint.url}: {exc!r}") from exc
    except RuntimeError as exc:  # aiohttp: "Session is closed"
        raise ModelUnavailable(f"{endpoint.url}: {exc}") from exc
    except ValueError as exc:  # not JSON
        raise ModelError(f"{endpoint.url} answered something other than JSON") from exc
    total = _token_total(data)
    if total is None:
        raise ModelError(f"{endpoint.url} answered without tokens: {str(data)[:100]}")
    return total


async def find_tokenize_endpoint(session: Any, root: str, model: str | None, *,
                                 timeout_s: float = 10.0) -> TokenizeEndpoint | None:
    """The first tokenize call in `_tokenize_calls` that the server at `root` answers with tokens;
    None when it answers none of them. ModelUnavailable when the server cannot be reached."""
    for endpoint in _tokenize_calls(root, model):
        try:
            if await _post_tokenize(session, endpoint, "Hello, world", timeout_s) > 0:
                log.info("token counts come from the server url=%s (%s)", endpoint.url, endpoint.server)
                return endpoint
        except ModelUnavailable:
            raise  # no connection: the other calls would only wait as long again
        except ModelError:
            continue  # refused: not this kind of server
    return None


class ServerTokenCounter:
    """Counts with the server's tokenizer, a piece at a time (see `pieces`).

    `count` sums the remembered count of each piece and the estimate of each piece not seen
    yet, and hands those to a background task that asks the server (`concurrency` requests at a
    time); the next count of the same text is exact. `await prepare(texts)` asks for the pieces
    of `texts` and waits, for exact counts at once. At most `max_pieces` pieces are kept (the
    oldest go first). A failing server is left alone for `retry_after_s`, counts estimated meanwhile.
    Where a tokenize call would end a running stream (`interrupts_generation`), the model wraps each
    generation in `async with counter.generation()`: calls wait until no generation is running.
    Made inside the running event loop (by the model's `start()`); `count` may be called from any thread.
    """

    def __init__(self, session: Any, endpoint: TokenizeEndpoint, *, timeout_s: float = 10.0, concurrency: int = 4,
                 max_pieces: int = 100_000, retry_after_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self._session = session
        self._timeout_s = timeout_s
        self._requests = asyncio.Semaphore(concurrency)
        self._max_pieces = max_pieces
        self._retry_after_s = retry_after_s
        self._counts: dict[tuple[str, str], int] = {}
        self._anchors: dict[str, int] = {}
        self._wanted: dict[tuple[str, str], None] = {}  # pieces waiting for the background task, in order
        self._loop = asyncio.get_running_loop()
        self._worker: asyncio.Task | None = None
        self._paused_until = 0.0
        self._closed = False
        # Generations running and tokenize calls in flight, for servers that interrupt streams.
        self._generations = 0
        self._calls = 0
        self._no_generation = asyncio.Event()
        self._no_generation.set()
        self._no_calls = asyncio.Event()
        self._no_calls.set()

    def count(self, text: str) -> int:
        total, missing = 0, []
        for key in pieces(text):
            known = self._counts.get(key)
            if known is None:
                known = estimate_piece(key[1])
                missing.append(key)
            total += known
        if missing:
            self._want(missing)
        return total

    def _want(self, keys: list[tuple[str, str]]) -> None:
        # May run in any thread: the counter's state changes only in its loop's thread.
        if self._closed or time.monotonic() < self._paused_until:
            return
        fresh = [key for key in keys if key not in self._wanted]
        if not fresh:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            self._enqueue(fresh)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to count for
            self._loop.call_soon_threadsafe(self._enqueue, fresh)

    def _enqueue(self, keys: list[tuple[str, str]]) -> None:
        if self._closed:
            return
        for key in keys:
            if key not in self._counts:
                self._wanted[key] = None
        if self._wanted and (self._worker is None or self._worker.done()):
            self._worker = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        while self._wanted:
            batch = list(itertools.islice(self._wanted, 64))
            try:
                await self._fetch(batch)
            except ModelError as exc:
                self._paused_until = time.monotonic() + self._retry_after_s
                log.warning("token counts estimated for %g s: the tokenize call failed url=%s: %s",
                            self._retry_after_s, self.endpoint.url, exc)
                self._wanted.clear()
                return
            for key in batch:
                self._wanted.pop(key, None)

    async def prepare(self, texts: Iterable[str]) -> None:
        """Ask the server now for every piece of `texts` not counted yet; ModelError if it fails.
        While a generation holds the calls back (see the class), the pieces are left to the
        background instead, so that a caller between two pieces of a stream never waits on itself."""
        keys = list(dict.fromkeys(key for text in texts for key in pieces(text) if key not in self._counts))
        if self._generations and self.endpoint.interrupts_generation:
            self._want(keys)
            return
        await self._fetch(keys)

    @contextlib.asynccontextmanager
    async def generation(self) -> AsyncIterator[None]:
        """Around one generation: with a server that ends a running stream when another request
        arrives, the calls in flight are waited for first and no new one starts until it ends."""
        if not self.endpoint.interrupts_generation:
            yield
            return
        self._generations += 1
        self._no_generation.clear()
        try:
            await self._no_calls.wait()  # each call is bounded by its own timeout
            yield
        finally:
            self._generations -= 1
            if not self._generations:
                self._no_generation.set()

    async def _fetch(self, keys: list[tuple[str, str]]) -> None:
        for anchor in {anchor for anchor, _ in keys} - self._anchors.keys():
            self._anchors[anchor] = await self._tokens(anchor)  # "": what the server adds (a BOS token)
        counts = await asyncio.gather(*(self._tokens(anchor + piece) for anchor, piece in keys))
        for (anchor, piece), total in zip(keys, counts, strict=True):
            self._counts[(anchor, piece)] = max(total - self._anchors[anchor], 0)
        if len(self._counts) > self._max_pieces:
            for key in list(itertools.islice(self._counts, len(self._counts) - self._max_pieces * 9 // 10)):
                del self._counts[key]

    async def _tokens(self, text: str) -> int:
        async with self._requests:
            if not self.endpoint.interrupts_generation:
                return await _post_tokenize(self._session, self.endpoint, text, self._timeout_s)
            while self._generations:  # nothing runs between this check and the count below
                await self._no_generation.wait()
            self._calls += 1
            self._no_calls.clear()
            try:
                return await _post_tokenize(self._session, self.endpoint, text, self._timeout_s)
            finally:
                self._calls -= 1
                if not self._calls:
                    self._no_calls.set()

    async def close(self) -> None:
        self._closed = True
        self._wanted.clear()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
