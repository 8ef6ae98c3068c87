"""The server under load: a real `tandem run` child process, its database (SQLite or a fresh
PostgreSQL one), its memory and CPU from /proc, its stderr, and the stored-records check."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.load_clients import ConversationLedger
from bot.settings import PROJECT_ROOT

PG_ADMIN_URL = os.environ.get("TANDEM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Open files for the server and the generator: one socket per simulated user, plus the database.
OPEN_FILES = 16_384
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_open_files_limit(wanted: int = OPEN_FILES) -> int:
    """Raise this process's soft RLIMIT_NOFILE toward `wanted` (up to the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the database --------------------------------------------------------------------------

async def create_postgres_database() -> tuple[str, str]:
    """A fresh database on the local server: (name, SQLAlchemy URL for TANDEM_DATABASE_URL)."""
    import asyncpg

    name = f"tandem_load_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def drop_postgres_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


_COUNTS = (
    "SELECT conversation_id, "
    "SUM(CASE WHEN author = 'user' THEN 1 ELSE 0 END) FROM messages GROUP BY conversation_id",
    "SELECT conversation_id, SUM(CASE WHEN kind = 'rating' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN kind = 'thumb' THEN 1 ELSE 0 END) FROM feedback GROUP BY conversation_id",
)


async def stored_counts(database_url: str) -> dict[str, tuple[int, int, int]]:
    """Per conversation: (user messages, ratings, thumbs) as stored, read with the plain driver."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            messages = connection.execute(_COUNTS[0]).fetchall()
            feedback = connection.execute(_COUNTS[1]).fetchall()
    else:
        import asyncpg

        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            messages = [tuple(r) for r in await connection.fetch(_COUNTS[0])]
            feedback = [tuple(r) for r in await connection.fetch(_COUNTS[1])]
        finally:
            await connection.close()
    counts: dict[str, list[int]] = {}
    for conversation_id, users in messages:
        counts.setdefault(conversation_id, [0, 0, 0])[0] = int(users or 0)
    for conversation_id, ratings, thumbs in feedback:
        row = counts.setdefault(conversation_id, [0, 0, 0])
        row[1], row[2] = int(ratings or 0), int(thumbs or 0)
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


@dataclass
class RecordsCheck:
    """Acknowledged messages, ratings and thumbs the generator recorded against what is stored."""

    conversations: int = 0
    messages_sent: int = 0
    # Acknowledged but answered "I can't save messages right now": not stored, and the user was told.
    messages_refused: int = 0
    ratings_sent: int = 0
    thumbs_sent: int = 0
    messages_lost: int = 0
    ratings_lost: int = 0
    thumbs_lost: int = 0
    # Conversations with more stored than confirmed: a turn stored whose answer the client never got.
    stored_unconfirmed: int = 0

    @property
    def lost(self) -> int:
        return self.messages_lost + self.ratings_lost + self.thumbs_lost


async def check_records(database_url: str, ledgers: list[ConversationLedger]) -> RecordsCheck:
    stored = await stored_counts(database_url)
    check = RecordsCheck(conversations=len(ledgers))
    for ledger in ledgers:
        messages, ratings, thumbs = stored.get(ledger.conversation_id, (0, 0, 0))
        check.messages_sent += ledger.acked_messages
        check.messages_refused += ledger.refused_messages
        check.ratings_sent += ledger.ratings
        check.thumbs_sent += ledger.thumbs
        check.messages_lost += max(0, ledger.acked_messages - ledger.refused_messages - messages)
        check.ratings_lost += max(0, ledger.ratings - ratings)
        check.thumbs_lost += max(0, ledger.thumbs - thumbs)
        check.stored_unconfirmed += messages > ledger.acked_messages
    return check


# --- the server process --------------------------------------------------------------------

def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in kB."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads), or of its thread `tid`
    (the main thread, which runs the event loop, has tid == pid), from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; busy excludes idle and iowait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total


@dataclass
class MemorySampler:
    """Samples the server's VmRSS / VmHWM every `every_s` seconds while running."""

    pid: int
    every_s: float = 0.5
    peak_rss_kb: int = 0
    hwm_kb: int = 0
    _task: asyncio.Task | None = field(default=None, repr=False)

    def sample(self) -> None:
        values = proc_memory(self.pid)
        self.peak_rss_kb = max(self.peak_rss_kb, values.get("VmRSS", 0))
        self.hwm_kb = max(self.hwm_kb, values.get("VmHWM", 0))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self.peak_rss_kb = 0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()


def _child_limits() -> None:  # runs in the child between fork and exec
    raise_open_files_limit()


class ServerProcess:
    """`python -m bot.cli run` in its own data folder, on the given database, with the small model;
    `workers` > 1 runs `--workers N` (a supervising parent and N server processes on the port)."""

    def __init__(self, data_dir: Path, database_url: str | None, log_path: Path, *,
                 extra_env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self._log = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
        env.update({
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TANDEM_DATA_DIR": str(self.data_dir),
            "TANDEM_LM__MODEL": "bundled:smollm2", "TANDEM_LM__N_THREADS": "1",
            # Every simulated user comes from 127.0.0.1 with its own X-Forwarded-For address.
            "TANDEM_SERVER__TRUST_FORWARDED_FOR": "true",
        })
        if self.database_url:
            env["TANDEM_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self._log = self.log_path.open("a", encoding="utf-8")
        argv = [sys.executable, "-m", "bot.cli", "run", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT, env=self.environment(), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=_child_limits,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def wait_healthy(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
                try:
                    async with session.get(f"{self.base_url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f} s; see {self.log_path}")

    async def warm_up(self, timeout_s: float = 300.0) -> float:
        """One story turn through the API (the model, the encoder and the database all warm); seconds."""
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(f"{self.base_url}/api/conversations") as r:
                opened = await r.json()
            url = f"{self.base_url}/api/conversations/{opened['conversation_id']}/messages"
            headers = {"Authorization": f"Bearer {opened['token']}"}
            for text in ("let's write a story", "continue 1", "/end"):
                async with session.post(url, json={"text": text}, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"warm-up turn {text!r} answered {r.status}: {await r.text()}")
                    await r.json()
        return time.monotonic() - started

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the server finishes turns in flight, then stops), SIGKILL after `timeout_s`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        return self.process.returncode


# --- what the server wrote ------------------------------------------------------------------

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_IDS = re.compile(r"(conversation|user|story|message)=\S+|\b[0-9a-f]{16,}\b|\b\d+(\.\d+)?\b")


def scan_log(text: str) -> dict[str, object]:
    """Tracebacks, 'database is locked', and ERROR/WARNING lines (grouped, numbers masked)."""
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    for line in text.splitlines():
        body = _STAMP.sub("", line)
        if body.startswith("ERROR "):
            errors[_IDS.sub("#", body)[:160]] += 1
        elif body.startswith("WARNING "):
            warnings[_IDS.sub("#", body)[:160]] += 1
    return {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "database_locked": text.count("database is locked"),
        "errors": dict(errors.most_common(8)), "error_lines": sum(errors.values()),
        "warnings": dict(warnings.most_common(8)), "warning_lines": sum(warnings.values()),
    }
