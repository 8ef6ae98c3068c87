"""`tandem run --workers N`: workers share one port, a killed worker is restarted, SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.workers import SUPERVISOR_PID_ENV, WorkerPool, describe_exit, watch_supervisor
from tests.conftest import free_port
from tests.processes import terminate

WORKER_LINE = re.compile(r"Tandem worker (\d+) is running at (http://127\.0\.0\.1:\d+)/ +\(pid (\d+)\)")


class Lines:
    """A child's stderr read on a thread (the workers write to it too; a full pipe would block them)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait(self, pattern: re.Pattern, count: int, timeout: float = 180.0) -> list[re.Match]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(pattern.search, self.lines) if m]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                assert remaining > 0, "".join(self.lines[-60:])
                self._changed.wait(remaining)


def _health(base: str) -> dict:
    # A new connection each time: SO_REUSEPORT spreads connections, not requests.
    request = urllib.request.Request(f"{base}/healthz", headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _pids_answering(base: str, tries: int = 60) -> set[int]:
    pids = set()
    for _ in range(tries):
        pids.add(_health(base)["pid"])
        if len(pids) > 1:
            break
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_the_port_a_killed_one_comes_back_and_sigterm_stops_all(
        tmp_path: Path, subprocess_env) -> None:
    port = free_port()
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    parent = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--workers", "2", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    output = Lines(parent.stderr)
    try:
        started = output.wait(WORKER_LINE, 2)
        base = started[0].group(2)
        workers = {int(m.group(1)): int(m.group(3)) for m in started}
        assert sorted(workers) == [0, 1]
        assert (tmp_path / "data" / "tandem.sqlite3").is_file()

        assert _pids_answering(base) == set(workers.values())
        report = _health(base)
        assert report["status"] == "ok" and report["worker"] == {v: k for k, v in workers.items()}[report["pid"]]

        os.kill(workers[0], signal.SIGKILL)
        restart = re.compile(r"worker 0 \(pid %d\) was killed by signal SIGKILL" % workers[0])
        output.wait(restart, 1, timeout=30)
        # Gone (the parent reaped it): the other worker goes on serving the port alone, while
        # the parent starts a new first worker. (Connections queued to the killed one were reset.)
        assert all(_health(base)["pid"] == workers[1] for _ in range(5))
        again = output.wait(WORKER_LINE, 3)[2]
        assert again.group(1) == "0" and int(again.group(3)) != workers[0]
        assert _pids_answering(base) == {workers[1], int(again.group(3))}
        children = [workers[1], int(again.group(3))]
    finally:
        terminate(parent, 60)
    assert parent.returncode == 0, "".join(output.lines[-40:])
    assert not any(_alive(pid) for pid in children)
    with pytest.raises(urllib.error.URLError):
        _health(base)


def test_more_than_one_worker_needs_a_fixed_port(tmp_path: Path, subprocess_env) -> None:
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--workers", "2", "--port", "0"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--workers needs a fixed port" in result.stderr and "Traceback" not in result.stderr


# --- the pool on its own, with small stand-in commands -----------------------------------------

def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_dying_worker_is_restarted_with_one_line_naming_how_it_died(caplog) -> None:
    caplog.set_level(logging.INFO, logger="bot.workers")
    pool = WorkerPool(1, lambda _i: _python("import sys, time; time.sleep(0.2); sys.exit(3)"),
                      backoff_s=0.05, backoff_max_s=0.1)
    stop = asyncio.Event()
    running = asyncio.create_task(pool.run(stop))
    async with asyncio.timeout(30):
        while sum("exited with code 3" in r.getMessage() for r in caplog.records) < 2:
            await asyncio.sleep(0.05)
    stop.set()
    assert await running == 0
    restarts = [r for r in caplog.records if "restarting in" in r.getMessage()]
    assert all(r.levelno == logging.WARNING and r.getMessage().startswith("worker 0 (pid ") for r in restarts)


async def test_a_worker_that_refuses_to_start_stops_the_pool_with_its_code() -> None:
    pool = WorkerPool(2, lambda i: _python("import sys, time; sys.exit(2)" if i == 1 else "import time; time.sleep(60)"),
                      backoff_s=0.05)
    async with asyncio.timeout(30):
        assert await pool.run(asyncio.Event()) == 2
    assert all(p.returncode is not None for p in pool.processes.values())


def test_exit_codes_are_described_in_words() -> None:
    assert describe_exit(-9) == "was killed by signal SIGKILL"
    assert describe_exit(1) == "exited with code 1"


async def test_a_worker_whose_supervisor_is_gone_stops(monkeypatch) -> None:
    stop = asyncio.Event()
    monkeypatch.setenv(SUPERVISOR_PID_ENV, str(os.getppid()))
    watching = asyncio.create_task(watch_supervisor(stop, interval_s=0.01))
    await asyncio.sleep(0.1)
    assert not stop.is_set()  # the parent is there
    watching.cancel()
    monkeypatch.setenv(SUPERVISOR_PID_ENV, str(os.getppid() + 1))  # as after a reparenting
    await asyncio.wait_for(watch_supervisor(stop, interval_s=0.01), 5)
    assert stop.is_set()
