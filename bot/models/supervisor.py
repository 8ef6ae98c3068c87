"""SupervisedModel: a LanguageModel whose local backend runs in a child process that the server
starts, watches and restarts, so a segfault, an OOM kill or a hang of the model never takes the
server down (the way Dream runs its models as services)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bot
from bot.core.errors import ConfigError, ModelCrashed, ModelError, ModelTimeout, ModelUnavailable
from bot.models import worker_protocol as wire
from bot.models.base import GenerationParams, Prompt
from bot.models.config import LmConfig

log = logging.getLogger(__name__)

# Restart delays grow from the first to the last, doubling after each crash that follows a crash.
RESTART_BACKOFF_S = (0.5, 30.0)


@dataclass
class _Request:
    """One generation in flight: where its events go, and what to do once the worker ends it."""

    queue: asyncio.Queue
    on_end: Callable[[], None]
    ended: bool = False

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.on_end()


@dataclass
class _Worker:
    """One child process and what belongs to it."""

    process: asyncio.subprocess.Process
    requests: dict[int, _Request] = field(default_factory=dict)
    pongs: dict[int, asyncio.Future] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    reader: asyncio.Task | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(wire.encode(message))


class SupervisedModel:
    """The configured local model (llama.cpp or transformers), run by `python -m bot.models.worker`.

    - A generation in flight when the worker dies ends with ModelCrashed after the pieces
      already streamed (the story keeps them as an incomplete passage; small talk falls back).
    - The worker is restarted with backoff; requests meanwhile wait for it within their timeout.
    - A generation past `timeout_s` ends with ModelTimeout; if the worker then does not answer a
      ping within `ping_timeout_s`, it is taken for hung, killed and restarted.
    - Tokens are counted here, with the model's tokenizer loaded without weights, since prompt
      building counts synchronously and often.
    """

    def __init__(self, config: LmConfig, data_dir: Path, *, log_level: str = "WARNING",
                 env: dict[str, str] | None = None, ping_timeout_s: float = 5.0) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.name = config.model
        self.context_window = config.context_window or 2048
        self.timeout_s = config.timeout_s
        self.max_concurrent = config.max_concurrent
        self.ping_timeout_s = ping_timeout_s
        self.last_stats: dict[str, Any] = {}
        self._log_level = log_level
        self._env = env
        self._slots = asyncio.Semaphore(config.max_concurrent)
        self._ids = itertools.count(1)
        self._worker: _Worker | None = None
        self._ready = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._restarting: asyncio.Task | None = None
        self._closing = False
        self._count: Callable[[str], int] | None = None
        self.state = "stopped"  # stopped | starting | ready | restarting | failed | closed
        self.restarts = 0
        self.crashes_in_a_row = 0
        self.last_exit: str | None = None
        self.last_error: str | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and wait until its model is loaded; raises ModelUnavailable if it
        cannot load (the message says why), and ModelCrashed if it died while loading."""
        if self.state == "ready":
            return
        if self.state == "restarting":
            await self._wait_ready(time.monotonic() + self.config.load_timeout_s)
            return
        async with self._start_lock:
            if self.state == "ready":
                return
            self._closing = False
            await self._spawn()

    async def close(self) -> None:
        self._closing = True
        self.state = "closed"
        if self._restarting is not None:
            self._restarting.cancel()
        worker, self._worker = self._worker, None
        self._ready.clear()
        if worker is None:
            return
        stdin = worker.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()  # the worker ends its generations and exits
        try:
            await asyncio.wait_for(worker.process.wait(), 10)
        except TimeoutError:
            log.warning("language model worker did not exit within 10 s (pid %d); killing it", worker.pid)
            _kill(worker)
            await worker.process.wait()
        if worker.reader is not None:
            await asyncio.gather(worker.reader, return_exceptions=True)
        self._fail_requests(worker, ModelUnavailable("the language model was shut down"))

    def health(self) -> dict[str, Any]:
        """What /healthz reports about the model."""
        worker = self._worker
        report: dict[str, Any] = {"state": self.state, "model": self.name, "restarts": self.restarts}
        if worker is not None:
            report["pid"] = worker.pid
            if "backend" in worker.info:
                report["backend"] = worker.info["backend"]
        if self.last_exit:
            report["last_exit"] = self.last_exit
        if self.last_error and self.state == "failed":
            report["error"] = self.last_error
        return report

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    async def _spawn(self) -> None:
        if self.state != "restarting":
            self.state = "starting"
        self._ready.clear()  # set again once it is ready or has failed: waiters then read the state
        env = dict(os.environ if self._env is None else self._env)
        env["TANDEM_LOG_LEVEL"] = self._log_level
        root = str(Path(bot.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.models.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            env=env, limit=wire.MAX_LINE_BYTES,
        )
        worker = _Worker(process)
        worker.send({"op": "start", "config": self.config.model_dump(mode="json", exclude={"api_key"}),
                     "data_dir": str(self.data_dir)})
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.config.load_timeout_s)
        except TimeoutError:
            _kill(worker)
            await _discard(process)
            raise self._start_failed(f"it did not finish loading within {self.config.load_timeout_s:g} s") from None
        message = _decode_or_none(line) if line else None  # empty: the worker ended before a word
        if message is None or message.get("ev") != "ready":
            if message is not None and message.get("ev") == "failed":
                await _discard(process)
                error = wire.error_from_wire(message.get("kind", "ModelError"), message.get("message", ""))
                self.state, self.last_error = "failed", str(error)
                self._ready.set()
                log.error("language model failed to load: %s", error)
                raise ModelUnavailable(str(error)) from error
            returncode = await _discard(process)
            self.last_exit = wire.describe_exit(returncode)
            raise self._start_failed(f"its worker process ended while loading ({self.last_exit})", crashed=True)
        worker.info = message
        self.context_window = int(message.get("context_window") or self.context_window)
        if self._count is None:
            self._count = await asyncio.to_thread(_open_counter, self.config, self.data_dir)
        self._worker = worker
        worker.reader = asyncio.create_task(self._read(worker), name=f"lm-worker-{worker.pid}")
        self.state = "ready"
        self._ready.set()
        log.info("language model worker ready pid=%d model=%s %s load_s=%s", worker.pid, message.get("name"),
                 message.get("backend"), message.get("load_s"))

    def _start_failed(self, reason: str, *, crashed: bool = False) -> ModelError:
        self.last_error = f"the language model {self.name} could not start: {reason}"
        if self.state != "restarting":
            self.state = "failed"
            self._ready.set()
        return (ModelCrashed if crashed else ModelUnavailable)(self.last_error)

    async def _read(self, worker: _Worker) -> None:
        """Route the worker's events to their requests until its stdout closes, then handle the exit."""
        stdout = worker.process.stdout
        while True:
            try:
                line = await stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                log.error("language model worker sent an over-long line; restarting it")
                _kill(worker)
                break
            if not line:
                break
            message = _decode_or_none(line)
            if message is None:
                continue
            self._route(worker, message)
        returncode = await worker.process.wait()
        if self._worker is worker:
            self._worker = None
            self._ready.clear()
        if self._closing:
            return
        self.last_exit = wire.describe_exit(returncode)
        self.crashes_in_a_row += 1
        delay = min(RESTART_BACKOFF_S[1], RESTART_BACKOFF_S[0] * 2 ** (self.crashes_in_a_row - 1))
        log.error("language model worker died: %s (pid %d); restarting in %.1f s", self.last_exit, worker.pid, delay)
        self._fail_requests(worker, ModelCrashed(f"the language model worker died ({self.last_exit})"))
        self.state = "restarting"
        self._restarting = asyncio.create_task(self._restart(delay))

    def _route(self, worker: _Worker, message: dict[str, Any]) -> None:
        event, request_id = message.get("ev"), message.get("id")
        if event == "pong":
            future = worker.pongs.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(True)
            return
        request = worker.requests.get(request_id)
        if request is None:
            return
        if event == "piece":
            request.queue.put_nowait(("piece", str(message.get("text", ""))))
            return
        worker.requests.pop(request_id, None)
        if event == "done":
            if not message.get("cancelled"):
                self.last_stats = dict(message.get("stats") or {})
                self.crashes_in_a_row = 0  # a finished generation: the next crash starts the backoff afresh
            request.queue.put_nowait(("done", None))
        else:
            error = wire.error_from_wire(str(message.get("kind", "ModelError")), str(message.get("message", "")))
            request.queue.put_nowait(("error", error))
        request.end()

    def _fail_requests(self, worker: _Worker, error: ModelError) -> None:
        for request in list(worker.requests.values()):
            request.queue.put_nowait(("error", error))
            request.end()
        worker.requests.clear()
        for future in worker.pongs.values():
            if not future.done():
                future.set_result(False)
        worker.pongs.clear()

    async def _restart(self, delay: float) -> None:
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                self.restarts += 1
                return
            except ModelCrashed:
                self.crashes_in_a_row += 1
                delay = min(RESTART_BACKOFF_S[1], RESTART_BACKOFF_S[0] * 2 ** (self.crashes_in_a_row - 1))
                log.error("language model worker died while loading: %s; restarting in %.1f s",
                          self.last_exit, delay)
            except (ModelError, ConfigError, OSError) as exc:
                self.state, self.last_error = "failed", str(exc)
                self._ready.set()  # waiting requests learn at once that it failed
                return

    async def _wait_ready(self, deadline: float) -> _Worker:
        while True:
            worker = self._worker
            if worker is not None and self.state == "ready":
                return worker
            if self.state == "failed":
                raise ModelUnavailable(self.last_error or "the language model could not start")
            if self.state in ("stopped", "closed"):
                await self.start()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ModelUnavailable("the language model is restarting after a crash")
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                raise ModelUnavailable("the language model is restarting after a crash") from None

    # --- requests --------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self._count is None:
            raise ModelError(f"{self.name}: start() was not called")
        return self._count(text)

    async def generate(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None) -> str:
        return "".join([piece async for piece in self.stream(prompt, params, cache_key=cache_key)])

    async def stream(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None
                     ) -> AsyncIterator[str]:
        params = params.with_seed()
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
        except TimeoutError:
            raise ModelTimeout(f"{self.name}: no free generation slot within {self.timeout_s:g} s") from None
        request: _Request | None = None
        try:
            worker = await self._wait_ready(deadline)
            request_id = next(self._ids)
            request = _Request(asyncio.Queue(), self._slots.release)
            worker.requests[request_id] = request
            worker.send({"op": "generate", "id": request_id, "prompt": wire.prompt_to_wire(prompt),
                         "params": wire.params_to_wire(params), "cache_key": cache_key})
            while True:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    kind, value = await asyncio.wait_for(request.queue.get(), remaining)
                except TimeoutError:
                    self._check_alive(worker)
                    raise ModelTimeout(f"{self.name}: generation took longer than {self.timeout_s:g} s") from None
                if kind == "piece":
                    yield value
                elif kind == "done":
                    return
                else:
                    raise value
        finally:
            if request is None:
                self._slots.release()
            elif not request.ended:
                # Closed early (stop, timeout, a client gone): the worker stops at its next token and
                # confirms, which releases the slot, so generations never overlap on the model.
                worker.send({"op": "cancel", "id": request_id})

    def _check_alive(self, worker: _Worker) -> None:
        """A generation ran out of time: ping the worker, and kill it if it does not answer."""
        if worker.process.returncode is not None or self._closing:
            return
        ping_id = next(self._ids)
        pong = asyncio.get_running_loop().create_future()
        worker.pongs[ping_id] = pong
        worker.send({"op": "ping", "id": ping_id})

        async def watch() -> None:
            try:
                answered = await asyncio.wait_for(pong, self.ping_timeout_s)
            except TimeoutError:
                answered = False
            worker.pongs.pop(ping_id, None)
            if not answered and worker.process.returncode is None and not self._closing:
                log.error("language model worker stopped answering (pid %d); killing it", worker.pid)
                _kill(worker)

        asyncio.create_task(watch(), name=f"lm-ping-{worker.pid}")


async def _discard(process: asyncio.subprocess.Process) -> int:
    """Wait for a worker that never became ready, closing its pipes, so no transport outlives it."""
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
    returncode = await process.wait()
    transport = getattr(process, "_transport", None)  # asyncio keeps it open until the pipes are drained
    if transport is not None:
        transport.close()
    return returncode


def _kill(worker: _Worker) -> None:
    try:
        os.kill(worker.pid, signal.SIGKILL)  # also ends a stopped (SIGSTOP) process
    except ProcessLookupError:
        pass


def _decode_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        return wire.decode(line)
    except ValueError:
        log.warning("language model worker sent a malformed line (%d bytes)", len(line))
        return None


def _open_counter(config: LmConfig, data_dir: Path) -> Callable[[str], int]:
    """A token counter for the configured model, without its weights."""
    from bot.models.runtime import pick_backend, resolve_source

    source = resolve_source(config.model, data_dir, progress=False)
    backend = pick_backend(source, config.backend)
    if backend == "llama_cpp":
        from bot.models.llama_cpp_backend import open_llama

        vocab = open_llama(model_path=str(source.path), vocab_only=True)
        return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    from transformers import AutoTokenizer

    folder = source.path
    if source.kind == "gguf":
        from bot.models.gguf_convert import ensure_converted

        folder = ensure_converted(source.path, data_dir, dtype=config.torch_dtype)  # done by the worker already
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
