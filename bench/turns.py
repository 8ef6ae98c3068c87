"""Cheap turns under many conversations: closed-loop "help" turns over the HTTP API against a real `tandem run`.

Run: .venv/bin/python -m bench.turns [--db sqlite,postgres] [--levels 1,10,100,1000] [--workers 1,2]
     [--duration 20] [--warm-up 3] [--env KEY=VALUE ...] [--pin] [--json FILE | --from-json FILE] [--markdown]
     [--write [--append --title TEXT]]

For each database, each worker count (`tandem run --workers N`, on one fixed port) and each level
N: N conversations are opened (POST /api/conversations, one token user each), then every one of
them sends "help" (POST /api/conversations/{id}/messages) as soon as its previous answer came
(closed loop), for a short warm-up and then the measured window. Counted in the window: turns
answered, latencies, errors by kind (a 503 "busy" refusal is one), and the CPU time of the
server's processes (parent and workers, not the model worker processes) from /proc, per turn.
One server per (database, workers), all its levels in a row; rate limits are off. Everything
listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import benchmarks_md
from bench.load import percentiles
from bench.load_server import (
    ServerProcess, cpu_seconds, create_postgres_database, drop_postgres_database, machine_cpu_times,
    raise_open_files_limit, scan_log,
)
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench.turns")
TEXT = "help"
SECTION = "## Turns"
# A conversation whose turn failed waits this long before its next one, so that refused
# clients do not spin (the server's own Retry-After for "busy" is 5 s).
ERROR_PAUSE_S = 1.0
TURN_TIMEOUT_S = 30.0
# Conversations opened at once before a level starts.
OPEN_CONCURRENCY = 32
MODEL_WORKER = "bot.models.worker"
GOALS = "≥ 300 turns/s at 100 conversations, p99 ≤ 100 ms at 10, server CPU ≤ 5 ms per turn, 1000 held with 0 errors"


# --- the server's processes -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_pids(root: int) -> list[int]:
    """The root process and its descendants, without the model worker processes (and theirs)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        if MODEL_WORKER in _cmdline(pid):
            continue
        pids.append(pid)
        todo += _children(pid)
    return sorted(pids)


def pin_servers(root: int) -> dict[str, int]:
    """--pin: each serving process (all its threads) on one CPU of its own, from the last CPU down
    (the threads it starts later inherit it); the supervising parent and the model workers stay free."""
    serving = [pid for pid in server_pids(root) if pid != root] or [root]
    cpus = sorted(os.sched_getaffinity(0), reverse=True)
    pinned = {}
    for number, pid in enumerate(serving):
        cpu = cpus[number % len(cpus)]
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), {cpu})
            except OSError:
                pass  # a thread that ended meanwhile
        pinned[str(pid)] = cpu
    return pinned


def server_cpu(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the clients ------------------------------------------------------------------------------

@dataclass
class Window:
    """The measured window (perf_counter seconds); turns that end inside it count."""

    start: float
    end: float
    stopping: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    skills: Counter = field(default_factory=Counter)


async def open_conversations(session: aiohttp.ClientSession, base_url: str, count: int) -> list[tuple[str, str]]:
    """`count` fresh conversations, each of its own token user: [(messages URL, Authorization header)]."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> tuple[str, str]:
        async with gate:
            for attempt in range(5):
                async with session.post(f"{base_url}/api/conversations") as r:
                    if r.status == 201:
                        opened = await r.json()
                        return (f"{base_url}/api/conversations/{opened['conversation_id']}/messages",
                                f"Bearer {opened['token']}")
                    await r.read()
                await asyncio.sleep(1 + attempt)
            raise RuntimeError(f"could not open a conversation: HTTP {r.status}")

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _error_kind(status: int, body: bytes) -> str:
    try:
        code = json.loads(body).get("error", {}).get("code")
    except (ValueError, AttributeError):
        code = None
    return f"http_{status}" + (f"_{code}" if code else "")


async def converse(session: aiohttp.ClientSession, url: str, authorization: str, window: Window) -> None:
    """One closed-loop conversation: the next "help" as soon as the previous answer came."""
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    body = json.dumps({"text": TEXT, "language": "en"}).encode()
    timeout = aiohttp.ClientTimeout(total=TURN_TIMEOUT_S)
    while not window.stopping:
        started = time.perf_counter()
        error = skill = None
        try:
            async with session.post(url, data=body, headers=headers, timeout=timeout) as r:
                answer = await r.read()
                if r.status == 200:
                    skill = json.loads(answer).get("skill")
                else:
                    error = _error_kind(r.status, answer)
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"connection:{type(exc).__name__}"
        except ValueError:
            error = "bad_json"
        ended = time.perf_counter()
        if window.start <= ended <= window.end:
            if error is None:
                window.latencies.append(ended - started)
                window.skills[skill] += 1
            else:
                window.errors[error] += 1
        if error is not None:
            await asyncio.sleep(ERROR_PAUSE_S)


async def run_level(base_url: str, level: int, root_pid: int, warm_up_s: float, duration_s: float) -> dict[str, Any]:
    """Open `level` conversations, play them closed-loop for the warm-up and the window; the figures."""
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        opened_at = time.perf_counter()
        conversations = await open_conversations(session, base_url, level)
        open_s = time.perf_counter() - opened_at
        now = time.perf_counter()
        window = Window(start=now + warm_up_s, end=now + warm_up_s + duration_s)
        tasks = [asyncio.create_task(converse(session, url, auth, window)) for url, auth in conversations]
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        pids = server_pids(root_pid)
        cpu0, own0, machine0, load0 = server_cpu(pids), _own_cpu(), machine_cpu_times(), os.getloadavg()
        await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
        cpu1, own1, machine1 = server_cpu(pids), _own_cpu(), machine_cpu_times()
        pids_after = server_pids(root_pid)
        window.stopping = True
        _, late = await asyncio.wait(tasks, timeout=TURN_TIMEOUT_S + 5)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    turns = len(window.latencies)
    server_cpu_s = sum(cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0) for pid in pids)
    ms = percentiles(window.latencies)
    return {
        "level": level, "turns": turns, "turns_per_s": round(turns / duration_s, 1),
        "p50_ms": ms["p50"], "p95_ms": ms["p95"], "p99_ms": ms["p99"],
        "errors": dict(window.errors), "error_count": sum(window.errors.values()),
        "skills": dict(window.skills),
        "server_cpu_s": round(server_cpu_s, 2),
        "server_cpu_ms_per_turn": round(server_cpu_s * 1000 / turns, 2) if turns else None,
        "server_cores": round(server_cpu_s / duration_s, 2),
        "server_cpu_by_pid": {str(pid): round(cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0), 2) for pid in pids},
        "server_pids_changed": pids != pids_after,
        "generator_cpu_ms_per_turn": round((own1 - own0) * 1000 / turns, 2) if turns else None,
        "generator_cores": round((own1 - own0) / duration_s, 2),
        "machine_cpu_busy": round((machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]), 2),
        "load_average_before": [round(x, 2) for x in load0],
        "open_s": round(open_s, 1),
    }


# --- one database, one worker count ------------------------------------------------------------

async def run_server(kind: str, workers: int, database_url: str, workdir: Path, args: argparse.Namespace
                     ) -> dict[str, Any]:
    log_path = workdir / f"server-{kind}-{workers}w.log"
    env = {"TANDEM_SERVER__RATE_LIMIT_PER_IP__PER_MINUTE": "0",
           "TANDEM_SERVER__RATE_LIMIT_PER_USER__PER_MINUTE": "0", **args.env}
    server = ServerProcess(workdir / "data", database_url if kind == "postgres" else None, log_path,
                           extra_env=env, workers=workers)
    result: dict[str, Any] = {"db": kind, "workers": workers, "levels": []}
    started = time.monotonic()
    server.start()
    try:
        await server.wait_healthy()
        if workers > 1:
            await _wait_workers(server.pid, workers)
        result["start_s"] = round(time.monotonic() - started, 1)
        result["server_pids"] = server_pids(server.pid)
        if args.pin:
            result["pinned"] = pin_servers(server.pid)
        for level in args.levels:
            log.info("%s, %d worker(s), %d conversations: %.0f s warm-up + %.0f s", kind, workers, level,
                     args.warm_up, args.duration)
            figures = await run_level(server.base_url, level, server.pid, args.warm_up, args.duration)
            log.info("  %s", json.dumps({k: figures[k] for k in (
                "turns_per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "server_cpu_ms_per_turn",
                "generator_cpu_ms_per_turn", "machine_cpu_busy")}))
            result["levels"].append(figures)
    finally:
        result["server_exit"] = server.stop()
        result["server_log"] = scan_log(log_path.read_text(encoding="utf-8", errors="replace"))
    return result


async def _wait_workers(root: int, count: int, timeout_s: float = 300.0) -> None:
    """Until every worker of the pool listens (each logs itself running; /healthz may reach only one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = [pid for pid in server_pids(root) if pid != root and " bot.cli run" in _cmdline(pid)]
        if len(workers) >= count and all(_listening(pid) for pid in workers):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{count} workers did not all start within {timeout_s:.0f} s")


def _listening(pid: int) -> bool:
    """Whether process `pid` holds a listening TCP socket (state 0A in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[3] == "0A" and line.split()[9] in inodes for line in lines)


async def run_database(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"tandem-turns-{kind}-"))
    pg_name = None
    database_url = f"sqlite+aiosqlite:///{workdir / 'data' / 'tandem.sqlite3'}"
    results = []
    try:
        for workers in args.workers:
            # A fresh database for each server, so that every worker count starts from the same size.
            if kind == "postgres":
                pg_name, database_url = await create_postgres_database()
            else:
                for path in (workdir / "data").glob("tandem.sqlite3*"):
                    path.unlink()
            try:
                results.append(await run_server(kind, workers, database_url, workdir, args))
            finally:
                if pg_name is not None:
                    await drop_postgres_database(pg_name)
                    pg_name = None
    finally:
        if args.keep_data:
            log.info("data and server logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


# --- the report -------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model, flags = "unknown", set()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("Flags:"):
                flags = set(line.split(":", 1)[1].split())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "amx": any(f.startswith("amx") for f in flags),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": sys.version.split()[0]}


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}×)"


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _errors(figures: dict[str, Any]) -> str:
    if not figures["error_count"]:
        return "0"
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(figures["errors"].items(), key=lambda kv: -kv[1]))
    return f"{figures['error_count']}: {kinds}"


def _find(report: dict[str, Any], db: str, workers: int, level: int) -> dict[str, Any] | None:
    for result in report["results"]:
        if result["db"] == db and result["workers"] == workers:
            for figures in result["levels"]:
                if figures["level"] == level:
                    return figures
    return None


def goals(report: dict[str, Any], result: dict[str, Any]) -> str:
    def level(n: int) -> dict[str, Any] | None:
        return next((f for f in result["levels"] if f["level"] == n), None)

    parts = []
    if (at := level(100)) is not None:
        parts.append(f"{at['turns_per_s']:.0f} turns/s at 100 {'✓' if at['turns_per_s'] >= 300 else '✗'}")
    if (at := level(10)) is not None and at["p99_ms"] is not None:
        parts.append(f"p99 {at['p99_ms']:.0f} ms at 10 {'✓' if at['p99_ms'] <= 100 else '✗'}")
    cpu = [f["server_cpu_ms_per_turn"] for f in result["levels"] if f["server_cpu_ms_per_turn"] is not None]
    if cpu:
        parts.append(f"CPU {min(cpu):.1f}–{max(cpu):.1f} ms/turn {'✓' if max(cpu) <= 5 else '✗'}")
    if (at := level(1000)) is not None:
        parts.append(f"{at['error_count']} errors at 1000 {'✓' if at['error_count'] == 0 else '✗'}")
    return "; ".join(parts)


def markdown(report: dict[str, Any], heading: str = SECTION) -> str:
    m = report["machine"]
    s = report["settings"]
    yes = {True: "yes", False: "no"}
    server = ("rate limits off" + "".join(f", `{k}={v}`" for k, v in s["env"].items())
              + (", each serving process pinned to a CPU of its own (`--pin`)" if s.get("pin") else ""))
    lines = [
        heading, "",
        f"`{report['command']}`", "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, avx2 {yes[m['avx2']]}, avx512f {yes[m['avx512f']]}, "
        f"amx {yes[m['amx']]}; load average {' / '.join(str(x) for x in m['load_average'])} at the start, "
        f"{' / '.join(str(x) for x in report['load_average_end'])} at the end. Settings: {server}; "
        f"{s['warm_up_s']:g} s warm-up, {s['duration_s']:g} s measured per level.", "",
    ]
    if heading == SECTION:  # the method once, not again in each added run
        lines += [
            f"Server: `tandem run` as a child process (bundled:smollm2, 1 thread: loaded by the start-up "
            f"check, never used by these turns); the load generator runs on the same CPUs. Each level N: N "
            f"conversations (one token user each) send `{TEXT}` over `POST /api/conversations/{{id}}/messages`, "
            f"each the next as soon as the previous answer came (closed loop); a failed turn waits "
            f"{ERROR_PAUSE_S:g} s before the next, a 503 `busy` counts as an error. Server CPU = user + system "
            f"time of the server process(es) (with --workers 2, the parent and both workers; never the model "
            f"worker processes), from /proc, over the window, per turn answered; generator = this benchmark's "
            f"own process; machine busy = both CPUs, neighbours' work included. Ratios: turns/s against 1 "
            f"worker (same database and level); p50 against level 1 (same database and workers).", "",
            f"Goals: {GOALS}.", "",
        ]
    lines += [
        "| db | workers | conversations | turns/s (vs 1 worker) | p50 ms (vs level 1) | p95 ms | p99 ms "
        "| errors | server CPU ms/turn | server cores | generator CPU ms/turn | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report["results"]:
        base_p50 = (_find(report, result["db"], result["workers"], 1) or {}).get("p50_ms")
        for f in result["levels"]:
            one = _find(report, result["db"], 1, f["level"]) if result["workers"] != 1 else None
            lines.append(
                f"| {result['db']} | {result['workers']} | {f['level']} "
                f"| {f['turns_per_s']:.1f}{_ratio(f['turns_per_s'], one and one['turns_per_s'])} "
                f"| {_num(f['p50_ms'], 1)}{_ratio(f['p50_ms'], base_p50) if f['level'] != 1 else ''} "
                f"| {_num(f['p95_ms'], 1)} | {_num(f['p99_ms'], 1)} | {_errors(f)} "
                f"| {_num(f['server_cpu_ms_per_turn'], 2)} | {f['server_cores']:.2f} "
                f"| {_num(f['generator_cpu_ms_per_turn'], 2)} | {f['machine_cpu_busy']:.0%} |")
    lines.append("")
    for result in report["results"]:
        log_ = result["server_log"]
        warnings = "; ".join(f"`{k}` ×{v}" for k, v in list(log_["warnings"].items())[:3])
        lines.append(f"- {result['db']}, {result['workers']} worker(s): {goals(report, result)}. Server log: "
                     f"{log_['tracebacks']} tracebacks, {log_['error_lines']} ERROR, {log_['warning_lines']} "
                     f"WARNING lines" + (f" ({warnings})" if warnings else "") + ".")
    lines.append("")
    return "\n".join(lines)


def write_section(path: Path, text: str, *, append: bool) -> None:
    """Replace (or with `append`, extend) the "## Turns" section of `path`, keeping the others."""
    benchmarks_md.write_section(path, text, section=SECTION, append=append)


# --- main ---------------------------------------------------------------------------------------

def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("TANDEM_"):
        raise argparse.ArgumentTypeError("expected TANDEM_KEY=VALUE")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.turns", description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--levels", type=_ints, default=[1, 10, 100, 1000], help="conversations at once")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="tandem run --workers, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds played before each window")
    parser.add_argument("--env", type=_env, action="append", default=[], help="extra server setting, KEY=VALUE")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--from-json", type=Path, help="run nothing: print or write the report saved in this file")
    parser.add_argument("--markdown", action="store_true", help="print the markdown table")
    parser.add_argument("--write", action="store_true", help="replace the Turns section of BENCHMARKS.md")
    parser.add_argument("--append", action="store_true", help="with --write: add to the section, not replace it")
    parser.add_argument("--title", default="Another run", help="with --append: the added subsection's heading")
    parser.add_argument("--pin", action="store_true",
                        help="pin each server process to a CPU of its own (an experiment, not the default)")
    parser.add_argument("--keep-data", action="store_true", help="keep the data folder and server logs")
    args = parser.parse_args(argv)
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    if set(args.db) - {"sqlite", "postgres"}:
        parser.error("--db takes sqlite and/or postgres")
    args.env = dict(args.env)
    return args


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.from_json is not None:  # only the report of an earlier run, written or printed again
        report = json.loads(args.from_json.read_text(encoding="utf-8"))
        _publish(report, args)
        return report
    raise_open_files_limit()
    report: dict[str, Any] = {
        "command": ".venv/bin/python -m bench.turns " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(), "results": [],
        "settings": {"levels": args.levels, "workers": args.workers, "duration_s": args.duration,
                     "warm_up_s": args.warm_up, "env": args.env, "text": TEXT, "pin": args.pin},
    }
    for kind in args.db:
        report["results"] += await run_database(kind, args)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    _publish(report, args)
    return report


def _publish(report: dict[str, Any], args: argparse.Namespace) -> None:
    text = markdown(report, f"### {args.title}" if args.append else SECTION)
    if args.markdown:
        print(text)
    if args.write:
        write_section(PROJECT_ROOT / "BENCHMARKS.md", text, append=args.append)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    asyncio.run(main())
