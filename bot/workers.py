"""WorkerPool: `tandem run --workers N`, N server processes on one port, started and restarted by the parent.

The workers share the listening port through SO_REUSEPORT (the kernel spreads new connections
over them), so no process in front is needed. The parent migrates the database once, then
only supervises: a worker that dies is started again after a backoff, and SIGTERM or SIGINT
to the parent stops every worker before the parent exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.core.errors import ConfigError

log = logging.getLogger(__name__)

# Set by the parent in each worker's environment: the worker's number (0..N-1), and the parent's
# pid, so that a worker whose parent is gone (killed with SIGKILL) stops instead of serving on.
WORKER_INDEX_ENV = "TANDEM_WORKER_INDEX"
SUPERVISOR_PID_ENV = "TANDEM_SUPERVISOR_PID"
# The exit code of `tandem run` refusing to start (settings, model, database, port): starting
# the same worker again would only fail again.
STARTUP_REFUSED = 2


def worker_index() -> int | None:
    """This process's worker number when the pool started it, else None (a plain `tandem run`)."""
    value = os.environ.get(WORKER_INDEX_ENV)
    return int(value) if value and value.isdecimal() else None


async def watch_supervisor(stop: asyncio.Event, interval_s: float = 1.0) -> None:
    """In a worker: set `stop` once the parent that started it is gone (it was reparented)."""
    parent = os.environ.get(SUPERVISOR_PID_ENV)
    if not parent or not parent.isdecimal():
        return
    while not stop.is_set():
        if os.getppid() != int(parent):
            log.warning("the supervisor (pid %s) is gone; this worker stops", parent)
            stop.set()
            return
        await asyncio.sleep(interval_s)


def check_port_shareable(host: str, port: int) -> None:
    """Fail with a clear message unless the workers can share (host, port): a fixed port, not
    held by a process that does not share it."""
    if port == 0:
        raise ConfigError("--workers needs a fixed port (--port or server.port): port 0 would give "
                          "each worker a different free port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def describe_exit(code: int) -> str:
    """asyncio's returncode in words: negative is the signal that ended the process."""
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerPool:
    """Keeps `count` processes running `command(index)`; `run(stop)` returns the parent's exit code."""

    def __init__(self, count: int, command: Callable[[int], Sequence[str]], *,
                 env: dict[str, str] | None = None, backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 stable_after_s: float = 30.0, stop_grace_s: float = 30.0) -> None:
        self.count = count
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        # A worker that ran this long before it died starts again after the shortest backoff.
        self.stable_after_s = stable_after_s
        self.stop_grace_s = stop_grace_s
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._exit_code = 0

    async def run(self, stop: asyncio.Event) -> int:
        keepers = [asyncio.create_task(self._keep(index)) for index in range(self.count)]
        stopper = asyncio.create_task(stop.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([stopper, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping.set()
            stopper.cancel()
            stopping.cancel()
            await self._stop_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        return self._exit_code

    async def _keep(self, index: int) -> None:
        """Start worker `index`, and again whenever it dies, waiting longer after each quick death."""
        delay = self.backoff_s
        first = True
        env = {**self.env, WORKER_INDEX_ENV: str(index), SUPERVISOR_PID_ENV: str(os.getpid())}
        while not self._stopping.is_set():
            started = time.monotonic()
            # A process group of its own: a Ctrl+C in the terminal reaches the parent only, which
            # stops the workers itself (and does not take their exit for a crash to restart).
            process = await asyncio.create_subprocess_exec(*self.command(index), env=env, process_group=0)
            self.processes[index] = process
            log.info("worker %d started pid=%d", index, process.pid)
            code = await process.wait()
            if self._stopping.is_set():
                return
            ran_s = time.monotonic() - started
            if first and code == STARTUP_REFUSED and ran_s < self.stable_after_s:
                log.error("worker %d (pid %d) refused to start (exit code %d); stopping all workers",
                          index, process.pid, code)
                self._exit_code = STARTUP_REFUSED
                self._stopping.set()
                return
            first = False
            if ran_s >= self.stable_after_s:
                delay = self.backoff_s
            log.warning("worker %d (pid %d) %s after %.0f s; restarting in %.1f s",
                        index, process.pid, describe_exit(code), ran_s, delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max_s)

    async def _stop_all(self) -> None:
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        if not running:
            return
        log.info("stopping %d workers", len(running))
        done, late = await asyncio.wait([asyncio.create_task(p.wait()) for p in running],
                                        timeout=self.stop_grace_s)
        if late:
            log.warning("%d workers did not stop within %.0f s; killing them", len(late), self.stop_grace_s)
            for process in running:
                if process.returncode is None:
                    try:
                        process.kill()
                    except ProcessLookupError:
                        pass
            await asyncio.wait(late)


def worker_command(host: str, port: int, config: Path | None) -> Callable[[int], list[str]]:
    """The command line of one worker: this same `tandem run`, on the shared port."""
    def command(_index: int) -> list[str]:
        argv = [sys.executable, "-m", "bot.cli", "run", "--host", host, "--port", str(port)]
        if config is not None:
            argv += ["--config", str(config)]
        return argv
    return command


async def serve_workers(settings, config: Path | None, host: str, port: int, count: int) -> int:
    """`tandem run --workers N` in the parent: prepare once, then supervise until SIGTERM/SIGINT."""
    from bot.app import prepare_language_model, protect_secrets
    from bot.storage.database import Database

    protect_secrets(settings)
    check_port_shareable(host, port)
    # Once here rather than N times at once: the schema, and a bundled model's joined file.
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s)
    try:
        await db.migrate()
    finally:
        await db.close()
    await prepare_language_model(settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"Tandem: {count} workers on http://{host}:{port}/  (Ctrl+C to stop)", file=sys.stderr, flush=True)
    pool = WorkerPool(count, worker_command(host, port, config))
    code = await pool.run(stop)
    log.info("all workers stopped")
    return code
