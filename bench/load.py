"""Load generator: a real `tandem run` under many concurrent widget and API conversations, level by level.

Run: .venv/bin/python -m bench.load [--db sqlite|postgres|sqlite,postgres] [--levels 10,100,1000]
     [--duration 60] [--turns 4] [--json FILE] [--markdown]

Each level N opens N WebSocket (web widget) and M = N/2 HTTP API conversations on a fresh
server process (same database for all levels, so VmHWM is the level's own peak), each playing
a seeded script of dialog-graph, classifier-routed, small-talk and story turns with think time
between them, bounded by a turn count and a deadline. Climbing stops at the first level the
machine does not hold (error rate above --max-error-rate, or non-generative p95 above
--p95-bound). Afterwards every acknowledged message, rating and thumb is looked up in the
database. Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.load_clients import LevelPlan, Recorder, run_level
from bench.load_scripts import EPISODES
from bench.load_server import (
    MemorySampler, ServerProcess, check_records, cpu_seconds, create_postgres_database, drop_postgres_database,
    machine_cpu_times, proc_memory, raise_open_files_limit, scan_log,
)

log = logging.getLogger("bench.load")
# The single-conversation phase that every level's latencies are compared with.
BASELINE_MIX = {"onboarding_menu": 1.0, "about": 1.0, "help": 1.0, "social": 1.0, "smalltalk": 1.0,
                "story_chat": 1.0}
# Within the per-user burst of chat turns (server.rate_limit_per_user, burst 10), so the
# short think time of the baseline is never rate limited.
BASELINE_TURNS = 10
# --mix non-generative: the same users without small talk and stories, to see what the model costs the rest.
NON_GENERATIVE_MIX = {name: weight for name, (_, weight) in EPISODES.items() if name not in ("smalltalk", "story_chat")}


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 in milliseconds (linear interpolation), None without samples."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return (ordered[low] + (ordered[high] - ordered[low]) * (pos - low)) * 1000

    return {"n": len(ordered), "p50": round(at(0.50), 1), "p95": round(at(0.95), 1), "p99": round(at(0.99), 1)}


def summarize(rec: Recorder) -> dict[str, Any]:
    """The figures of one level (or the baseline) from what the clients recorded."""
    answered = [t for t in rec.turns if t.latency_s is not None]
    window = max(1e-6, rec.ended_at - rec.started_at)
    errors = Counter(t.error for t in rec.turns if t.error) + Counter(a.error for a in rec.actions if a.error)
    attempted = len(rec.turns) + len(rec.actions)
    outcomes = Counter(t.outcome for t in rec.turns)
    first_pieces = [t.first_piece_s for t in answered if t.generative and t.first_piece_s is not None]
    feedback = [a.latency_s for a in rec.actions if a.kind in ("thumb", "rating") and a.latency_s is not None]
    return {
        "conversations": len(rec.ledgers),
        "turns_attempted": len(rec.turns), "turns_answered": len(answered), "turns_skipped": rec.skipped_turns,
        "turns_per_s": round(len(answered) / window, 2), "window_s": round(window, 1),
        "non_generative_ms": percentiles([t.latency_s for t in answered if not t.generative]),
        "generative_ms": percentiles([t.latency_s for t in answered if t.generative]),
        "generative_first_piece_ms": percentiles(first_pieces),
        "feedback_actions": len([a for a in rec.actions if a.kind in ("thumb", "rating")]),
        "feedback_ms": percentiles(feedback),
        "outcomes": dict(outcomes), "errors": dict(errors), "error_count": sum(errors.values()),
        # Which scripted turns failed (graph, intent, smalltalk, story, story_api).
        "errors_by_turn_kind": dict(Counter(t.kind for t in rec.turns if t.error)),
        "error_rate": round(sum(errors.values()) / attempted, 4) if attempted else 0.0,
        "busy_refusals": rec.busy_refusals,
        "skills": dict(Counter(t.skill for t in answered)),
    }


def verdict(figures: dict[str, Any], args: argparse.Namespace) -> str | None:
    """Why this level did not hold, or None when it did."""
    if figures.get("server_exit") not in (0, None):
        return f"the server exited with {figures['server_exit']}"
    if figures["turns_answered"] == 0:
        return "no turn was answered"
    if figures["error_rate"] > args.max_error_rate:
        return f"error rate {figures['error_rate']:.1%} > {args.max_error_rate:.0%}"
    p95 = figures["non_generative_ms"]["p95"]
    if p95 is not None and p95 > args.p95_bound * 1000:
        return f"non-generative p95 {p95 / 1000:.1f} s > {args.p95_bound:g} s"
    return None


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def plan_for(level: int, args: argparse.Namespace) -> LevelPlan:
    http = args.http if args.http is not None else level // 2
    return LevelPlan(ws=level, http=http, turns=args.turns, duration_s=args.duration,
                     ramp_s=min(args.ramp, args.duration / 3), think_s=(args.think_min, args.think_max),
                     turn_timeout_s=args.turn_timeout, grace_s=args.turn_timeout, seed=args.seed + level,
                     mix=NON_GENERATIVE_MIX if args.mix == "non-generative" else None)


async def baseline(base_url: str, args: argparse.Namespace) -> tuple[dict[str, Any], Recorder]:
    """One conversation at a time (a widget one, then an API one), short think time: the
    unloaded latencies every level is compared with."""
    combined = Recorder()
    for ws, http in ((1, 0), (0, 1)):
        plan = LevelPlan(ws=ws, http=http, turns=BASELINE_TURNS, duration_s=600, ramp_s=0, think_s=(0.3, 0.3),
                         turn_timeout_s=args.turn_timeout, grace_s=args.turn_timeout, seed=args.seed,
                         mix=BASELINE_MIX, thumb_probability=0.3, rating_probability=1.0)
        rec = await run_level(base_url, plan)
        if not combined.turns:
            combined.started_at = rec.started_at
        combined.turns += rec.turns
        combined.actions += rec.actions
        combined.ledgers += rec.ledgers
        combined.ended_at = rec.ended_at
    return summarize(combined), combined


async def run_database(kind: str, args: argparse.Namespace, result: dict[str, Any], checkpoint) -> None:
    """Every level on one database kind, into `result`: fresh server per level, records checked at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=f"tandem-load-{kind}-"))
    data_dir = workdir / "data"
    pg_name = None
    database_url = f"sqlite+aiosqlite:///{data_dir / 'tandem.sqlite3'}"
    if kind == "postgres":
        pg_name, database_url = await create_postgres_database()
    result.update(levels=[], stopped_at=None, stop_reason=None)
    ledgers: list = []
    try:
        for level in args.levels:
            log_path = workdir / f"server-{level}.log"
            server = ServerProcess(data_dir, database_url if pg_name else None, log_path)
            try:
                figures = await run_one_level(kind, level, server, args, result, ledgers)
            except Exception as exc:  # noqa: BLE001 - a level that breaks is reported, and climbing stops
                log.exception("%s level %d failed", kind, level)
                figures = {"level": level, "failed": f"{type(exc).__name__}: {exc}"}
            finally:
                figures_exit = server.stop()
            figures["server_exit"] = figures_exit
            figures["server_log"] = scan_log(log_path.read_text(encoding="utf-8", errors="replace"))
            figures["verdict"] = figures.get("failed") or verdict(figures, args)
            result["levels"].append(figures)
            checkpoint()
            log.info("%s level %d: %s", kind, level, json.dumps(_brief(figures)))
            if figures["verdict"] is not None:
                result["stopped_at"], result["stop_reason"] = level, figures["verdict"]
                if not args.keep_climbing or "failed" in figures:
                    break
        result["records"] = asdict(await check_records(database_url, ledgers))
        result["records"]["lost"] = (result["records"]["messages_lost"] + result["records"]["ratings_lost"]
                                     + result["records"]["thumbs_lost"])
    finally:
        if pg_name is not None:
            await drop_postgres_database(pg_name)
        if args.keep_data:
            log.info("data and server logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def run_one_level(kind: str, level: int, server: ServerProcess, args: argparse.Namespace,
                        result: dict[str, Any], ledgers: list) -> dict[str, Any]:
    """Start the server, warm it, (first time: measure the baseline), then play the level."""
    plan = plan_for(level, args)
    log.info("%s level %d: starting the server on %s", kind, level, server.base_url)
    server.start()
    await server.wait_healthy()
    warm_s = await server.warm_up()
    if "baseline" not in result:
        log.info("%s: baseline (one conversation at a time)", kind)
        result["baseline"], rec = await baseline(server.base_url, args)
        ledgers += rec.ledgers
    warm_rss = proc_memory(server.pid).get("VmRSS", 0)
    sampler = MemorySampler(server.pid)
    sampler.start()
    cpu0, loop0 = cpu_seconds(server.pid), cpu_seconds(server.pid, server.pid)
    own0, load0, machine0 = _own_cpu(), os.getloadavg(), machine_cpu_times()
    log.info("%s level %d: %d WebSocket + %d HTTP conversations, %d turns each, %.0f s",
             kind, level, plan.ws, plan.http, plan.turns, plan.duration_s)
    try:
        rec = await run_level(server.base_url, plan)
    finally:
        await sampler.stop()
    cpu1, loop1, own1 = cpu_seconds(server.pid), cpu_seconds(server.pid, server.pid), _own_cpu()
    machine1 = machine_cpu_times()
    ledgers += rec.ledgers
    figures = summarize(rec)
    figures.update({
        "level": level, "ws": plan.ws, "http": plan.http, "warm_up_s": round(warm_s, 1),
        "server_rss_warm_mb": round(warm_rss / 1024, 1),
        "server_rss_peak_mb": round(sampler.peak_rss_kb / 1024, 1),
        "server_vmhwm_mb": round(sampler.hwm_kb / 1024, 1),
        "server_cpu_s": round(cpu1 - cpu0, 1),
        "server_cores_used": round((cpu1 - cpu0) / figures["window_s"], 2),
        # The main thread runs the event loop (and all Python that holds the GIL there).
        "server_event_loop_cpu_s": round(loop1 - loop0, 1),
        "generator_cpu_s": round(own1 - own0, 1),
        # The whole machine's CPUs, busy share over the level: near 1.0, everyone waits for a core.
        "machine_cpu_busy": round((machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]), 2),
        "load_average_before": [round(x, 2) for x in load0],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    })
    return figures


def _brief(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("turns_answered", "turns_per_s", "error_rate", "errors", "outcomes", "server_vmhwm_mb",
            "server_cores_used", "verdict")
    return {k: figures.get(k) for k in keys} | {
        "non_gen_p95": figures.get("non_generative_ms", {}).get("p95"),
        "gen_p95": figures.get("generative_ms", {}).get("p95")}


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(memory_gb, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": sys.version.split()[0]}


# --- the report -------------------------------------------------------------------------------

def _ms(value: float | None, base: float | None = None) -> str:
    if value is None:
        return "—"
    text = f"{value:.0f}" if value < 10_000 else f"{value / 1000:.1f} s"
    if base:
        text += f" ({value / base:.1f}×)"
    return text


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "## Load", "",
        f"`{report['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, load average "
        f"{' / '.join(str(x) for x in m['load_average'])} at the start (shared with other engineers' work). "
        f"Server: `tandem run` as a child process, bundled:smollm2 (135M, llama.cpp, 1 thread, "
        f"`lm.max_concurrent` = 1), the default NLU cascade, a fresh process per level on one database. "
        f"Each level N = N web-widget (WebSocket) + N/2 HTTP API conversations arriving over "
        f"{report['settings']['ramp_s']:.0f} s, {report['settings']['turns']} turns each, think time "
        f"{report['settings']['think_s'][0]:g}–{report['settings']['think_s'][1]:g} s, "
        f"{report['settings']['duration_s']:g} s per level (turns in flight get up to "
        f"{report['settings']['turn_timeout_s']:g} s more), seed {report['settings']['seed']}"
        + (" (+ level), without small talk or story turns (`--mix non-generative`)." if report["settings"]["mix"]
           else " (+ level)."), "",
        "Generative = small talk and story continues answered through the model (reply `skill`), queueing for "
        "the one model slot included; *incomplete* = over the turn budget (partial text or a \"took too long\" "
        "answer), *model fallback* = the model failed and a canned answer came; neither counts as an error. "
        "Ratios are against the single-conversation baseline measured in the same run.", "",
    ]
    for result in report["results"]:
        base = result.get("baseline") or {}
        base_ng = (base.get("non_generative_ms") or {}).get("p50")
        base_g = (base.get("generative_ms") or {}).get("p50")
        lines += [
            f"### {result['db']}", "",
            f"Baseline (one conversation at a time): non-generative p50 {_ms(base_ng)} ms "
            f"(n={base.get('non_generative_ms', {}).get('n', 0)}), generative p50 {_ms(base_g)} ms "
            f"(n={base.get('generative_ms', {}).get('n', 0)}).", "",
            "| level (WS + HTTP) | turns answered | turns/s | non-gen p50 / p95 / p99 ms | gen p50 / p95 / p99 ms "
            "| incomplete / model fallback | errors | server VmHWM | server CPU (event-loop thread) "
            "| machine busy | holds |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in result["levels"]:
            if "failed" in f:
                lines.append(f"| {f['level']} | failed: {f['failed']} | | | | | | | | | no |")
                continue
            ng, g, o = f["non_generative_ms"], f["generative_ms"], f["outcomes"]
            lines.append(
                f"| {f['level']} ({f['ws']} + {f['http']}) | {f['turns_answered']}/{f['turns_attempted']} "
                f"| {f['turns_per_s']} | {_ms(ng['p50'], base_ng)} / {_ms(ng['p95'], base_ng)} / {_ms(ng['p99'])} "
                f"| {_ms(g['p50'], base_g)} / {_ms(g['p95'], base_g)} / {_ms(g['p99'])} (n={g['n']}) "
                f"| {o.get('incomplete', 0)} / {o.get('model_fallback', 0)} "
                f"| {f['error_count']} ({f['error_rate']:.1%}): {_kinds(f['errors'])}"
                f"{'; ' + str(f['busy_refusals']) + ' busy refusals sent again' if f.get('busy_refusals') else ''} "
                f"| {f['server_vmhwm_mb']:.0f} MB | {f['server_cpu_s']} s = {f['server_cores_used']} cores "
                f"({f['server_event_loop_cpu_s']} s) | {f['machine_cpu_busy']:.0%} "
                f"| {'yes' if f['verdict'] is None else 'no: ' + f['verdict']} |"
            )
        logs = [f["server_log"] for f in result["levels"]]
        rec = result.get("records", {})
        stop = (f"Stopped climbing at level {result['stopped_at']}: {result['stop_reason']}."
                if result.get("stopped_at") is not None else "Every level held.")
        if "failed" in result:
            stop = f"The run failed: {result['failed']}."
        lines += [
            "", stop,
            f"Server log over all levels: {sum(x['tracebacks'] for x in logs)} tracebacks, "
            f"{sum(x['database_locked'] for x in logs)} \"database is locked\", "
            f"{sum(x['error_lines'] for x in logs)} ERROR lines, {sum(x['warning_lines'] for x in logs)} WARNING lines"
            + _top_lines(logs) + ".",
            f"**Records lost: {rec.get('lost', '?')}** ({rec.get('messages_sent', 0)} acknowledged messages, "
            f"{rec.get('ratings_sent', 0)} ratings, {rec.get('thumbs_sent', 0)} thumbs in "
            f"{rec.get('conversations', 0)} conversations, all looked up in the database afterwards"
            + (f"; {rec['messages_refused']} more were acknowledged, then answered \"I can't save messages right "
               "now\" and not stored" if rec.get("messages_refused") else "") + ").", "",
        ]
    return "\n".join(lines)


def _top_lines(logs: list[dict[str, Any]]) -> str:
    merged: Counter[str] = Counter()
    for entry in logs:
        merged.update(entry["warnings"])
        merged.update(entry["errors"])
    if not merged:
        return ""
    return " (most frequent: " + "; ".join(f"`{k}` ×{v}" for k, v in merged.most_common(3)) + ")"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres, or both: sqlite,postgres")
    parser.add_argument("--levels", default="10,100,1000", help="WebSocket conversations per level")
    parser.add_argument("--http", type=int, help="HTTP API conversations per level (default: level / 2)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per level in which turns start")
    parser.add_argument("--turns", type=int, default=4, help="turns per conversation")
    parser.add_argument("--think-min", type=float, default=1.0)
    parser.add_argument("--think-max", type=float, default=5.0)
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which conversations arrive")
    parser.add_argument("--turn-timeout", type=float, default=130.0,
                        help="seconds a client waits for one answer (above the model's 120 s timeout)")
    parser.add_argument("--max-error-rate", type=float, default=0.05)
    parser.add_argument("--p95-bound", type=float, default=5.0, help="non-generative p95 bound, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mix", choices=("default", "non-generative"), default="default",
                        help="non-generative: no small talk or story turns (the baseline still has them)")
    parser.add_argument("--keep-climbing", action="store_true", help="run every level even after one fails")
    parser.add_argument("--keep-data", action="store_true", help="keep the data folder and server logs")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    parser.add_argument("--markdown", action="store_true", help="print a ## Load section for BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.dbs = [x.strip() for x in args.db.split(",") if x.strip()]
    if not set(args.dbs) <= {"sqlite", "postgres"}:
        parser.error("--db takes sqlite, postgres or sqlite,postgres")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "command": ".venv/bin/python -m bench.load " + " ".join(sys.argv[1:]), "machine": machine(),
        "settings": asdict(replace(plan_for(args.levels[0], args), ws=0, http=0, seed=args.seed)), "results": []}

    def checkpoint() -> None:  # the figures so far survive a run that breaks later
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")

    for kind in args.dbs:
        result: dict[str, Any] = {"db": kind, "levels": []}
        report["results"].append(result)
        try:
            await run_database(kind, args, result, checkpoint)
        except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL not answering: report, go on
            log.exception("%s run failed", kind)
            result["failed"] = f"{type(exc).__name__}: {exc}"
        checkpoint()
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    limit = raise_open_files_limit()
    log.info("open files limit %d", limit)
    started = time.monotonic()
    report = asyncio.run(main_async(args))
    report["wall_s"] = round(time.monotonic() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.markdown:
        print(markdown(report))
    else:
        print(json.dumps([_brief(f) | {"db": r["db"], "level": f["level"]} for r in report["results"]
                          for f in r["levels"]], indent=1))


if __name__ == "__main__":
    main()
