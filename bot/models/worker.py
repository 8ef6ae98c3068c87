"""The model worker process: loads one local backend (llama.cpp or transformers) and serves its
generations to the server over stdin/stdout, so a crash of native code takes only this process.

Started by bot.models.supervisor as `python -m bot.models.worker`; not meant to be run by hand.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bot.models import worker_protocol as wire

log = logging.getLogger("bot.models.worker")

# Chaos hook for the fault tests and for trying a deployment's supervision by hand:
# `crash-on-load` makes the worker die with SIGSEGV before it loads the model.
FAULT_ENV = "TANDEM_LM_WORKER_FAULT"


class WorkerServer:
    """Runs requests against the loaded model; one asyncio task per generation."""

    def __init__(self, model: Any, out_fd: int) -> None:
        self.model = model
        self._out_fd = out_fd
        self._tasks: dict[int, asyncio.Task] = {}

    def send(self, message: dict[str, Any]) -> None:
        data = wire.encode(message)
        view = memoryview(data)
        while view:  # a pipe write can be partial for long lines
            written = os.write(self._out_fd, view)
            view = view[written:]

    def handle(self, message: dict[str, Any]) -> None:
        op, request_id = message.get("op"), message.get("id")
        if op == "generate":
            self._tasks[request_id] = asyncio.create_task(self._generate(request_id, message))
        elif op == "cancel":
            task = self._tasks.get(request_id)
            if task is not None:
                task.cancel()
        elif op == "ping":
            self.send({"ev": "pong", "id": request_id})
        else:
            log.warning("unknown request op=%r", op)

    async def _generate(self, request_id: int, message: dict[str, Any]) -> None:
        started = time.perf_counter()
        pieces = 0
        try:
            prompt = wire.prompt_from_wire(message["prompt"])
            params = wire.params_from_wire(message["params"])
            stream = self.model.stream(prompt, params, cache_key=message.get("cache_key"))
            try:
                async for piece in stream:
                    pieces += 1
                    self.send({"ev": "piece", "id": request_id, "text": piece})
            finally:
                await stream.aclose()
            stats = dict(getattr(self.model, "last_stats", {}) or {})
            stats.setdefault("total_s", time.perf_counter() - started)
            self.send({"ev": "done", "id": request_id, "stats": stats})
        except asyncio.CancelledError:
            self.send({"ev": "done", "id": request_id, "cancelled": True, "stats": {"pieces": pieces}})
        except Exception as exc:  # noqa: BLE001 - every failure is answered, the worker lives on
            log.warning("generation failed id=%s: %s", request_id, exc)
            self.send({"ev": "error", "id": request_id, **wire.error_to_wire(exc)})
        finally:
            self._tasks.pop(request_id, None)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.model.close()


def _die_with_parent() -> None:
    """Ask Linux to end this process when the server dies, even one killed with SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the closed stdin ends the worker instead


def _backend_version(model: Any) -> str:
    module = type(model).__module__
    try:
        if module.endswith("llama_cpp_backend"):
            import llama_cpp

            return f"llama-cpp-python {llama_cpp.__version__}"
        if module.endswith("transformers_backend"):
            import transformers

            return f"transformers {transformers.__version__}"
    except ImportError:
        pass
    return module


async def serve(in_stream: asyncio.StreamReader, out_fd: int) -> int:
    from bot.models.config import LmConfig
    from bot.models.runtime import build_language_model

    first = await in_stream.readline()
    if not first:
        return 0
    start = wire.decode(first)
    if os.environ.get(FAULT_ENV) == "crash-on-load":
        os.kill(os.getpid(), signal.SIGSEGV)
    config = LmConfig.model_validate(start["config"])
    loading = time.perf_counter()
    try:
        model = await asyncio.to_thread(build_language_model, config, Path(start["data_dir"]), progress=False)
        await model.start()
    except Exception as exc:  # noqa: BLE001 - reported to the server, which tells the user
        os.write(out_fd, wire.encode({"ev": "failed", **wire.error_to_wire(exc)}))
        return 3
    server = WorkerServer(model, out_fd)
    server.send({
        "ev": "ready", "name": model.name, "context_window": model.context_window,
        "backend": _backend_version(model), "load_s": round(time.perf_counter() - loading, 3),
        "pid": os.getpid(),
    })
    try:
        while True:
            line = await in_stream.readline()
            if not line:
                break  # the server closed our stdin: it is shutting down or gone
            try:
                message = wire.decode(line)
            except ValueError:
                log.warning("malformed request line (%d bytes) ignored", len(line))
                continue
            server.handle(message)
    finally:
        await server.close()
    return 0


async def _main() -> int:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so whatever native
    # code prints (llama.cpp, torch) lands in the log instead of corrupting the protocol.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=wire.MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return await serve(reader, out_fd)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("TANDEM_LOG_LEVEL", "WARNING"), stream=sys.stderr,
        format="%(asctime)s %(levelname)s model-worker %(name)s: %(message)s",
    )
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the server, which closes us in order
    code = asyncio.run(_main())
    # Skip interpreter teardown: a backend's native threads can abort it, and nothing is left to flush.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
