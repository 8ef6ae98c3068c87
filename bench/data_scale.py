"""Data at scale: the dashboard, the feedback exports and a user's story list on a seeded database
of about a million messages, on SQLite and PostgreSQL.

Run: .venv/bin/python -m bench.data_scale [--db sqlite,postgres] [--messages 1000000] [--baseline 0.01]
     [--repeat 5] [--write]

For each database, two databases are seeded by bench/seed.py in the same run: the baseline at
`--baseline` of the size (1 %: 10,000 messages, 1,000 conversations, 100 stories) and the full one
(1,000,000 messages, 100,000 conversations, 10,000 stories, 20,000 users, over a year). On each:
- the dashboard: GET /admin (the report of the last 30 days rendered to HTML, charts included)
  over HTTP from an in-process aiohttp server, median of --repeat;
- the exports: GET /admin/feedback.csv and .json, read to the end: time and bytes, then once more
  under tracemalloc for the peak of Python memory allocated while the server wrote them, which
  stays flat when the export streams and grows with the feedback when it is built whole;
- a user's story list (StoryRepo.list_stories of the user with the most stories), median of 20.
Ratios are full against baseline: ~1 for what does not grow with the database.
Goals: the dashboard in <= 1 s, exports in constant memory, a story list in <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bench import benchmarks_md
from bench.load_server import create_postgres_database, drop_postgres_database
from bench.seed import seed
from bot.models.cpu import cpu_model_name
from bot.settings import Settings
from bot.storage.database import Database
from bot.storage.stories import StoryRepo

SECTION = "## Data at scale"
TOKEN = "bench-admin-token"
FULL = {"messages": 1_000_000, "conversations": 100_000, "stories": 10_000, "users": 20_000}
GOALS = "dashboard ≤ 1 s, exports in constant memory, a user's story list ≤ 50 ms"


def _sizes(messages: int, fraction: float) -> dict[str, dict[str, int]]:
    scale = messages / FULL["messages"]
    full = {k: max(1, round(v * scale)) for k, v in FULL.items()}
    baseline = {k: max(1, round(v * fraction)) for k, v in full.items()}
    return {"baseline": baseline, "full": full}


async def _timed(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _download(client: TestClient, path: str, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    response = await client.get(path, headers=headers)
    assert response.status == 200, response.status
    received = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        received += len(chunk)
    return time.perf_counter() - started, received


async def measure(url: str, size: dict[str, int], repeat: int) -> dict[str, Any]:
    from bot.web import dashboard

    db = Database(url)
    try:
        await db.migrate()
        started = time.perf_counter()
        seeded = await seed(db, **size)
        figures: dict[str, Any] = {"seeded": size, "seed_s": round(time.perf_counter() - started, 1),
                                   "feedback": seeded.feedback}
        app = web.Application()
        dashboard.add_routes(app, db, Settings(admin_token=SecretStr(TOKEN)))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with TestClient(TestServer(app)) as client:
            async def page() -> None:
                response = await client.get("/admin", headers=headers)
                assert response.status == 200, response.status
                await response.read()

            await page()  # warm: connections, templates, the planner's first look
            figures["dashboard_s"] = await _timed(page, repeat)
            for fmt in ("csv", "json"):
                # Timed on its own, then again under tracemalloc (which slows Python several times).
                elapsed, received = await _download(client, f"/admin/feedback.{fmt}", headers)
                tracemalloc.start()
                await _download(client, f"/admin/feedback.{fmt}", headers)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                figures[f"export_{fmt}"] = {"s": round(elapsed, 2), "bytes": received,
                                            "peak_mb": round(peak / 2**20, 1)}
        repo = StoryRepo(db)

        async def stories() -> None:
            await repo.list_stories(seeded.busiest_user)

        await stories()
        figures["story_list_ms"] = round(await _timed(stories, 20) * 1000, 2)
        figures["story_count"] = len(await repo.list_stories(seeded.busiest_user))
        return figures
    finally:
        await db.close()


async def run(databases: list[str], messages: int, fraction: float, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in databases:
        results[name] = {}
        for label, size in _sizes(messages, fraction).items():
            if name == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    url = f"sqlite+aiosqlite:///{Path(folder) / 'scale.sqlite3'}"
                    results[name][label] = await measure(url, size, repeat)
            else:
                pg_name, url = await create_postgres_database()
                try:
                    results[name][label] = await measure(url, size, repeat)
                finally:
                    await drop_postgres_database(pg_name)
            print(f"{name} {label}: {results[name][label]}", file=sys.stderr, flush=True)
    return results


def _ratio(full: float, baseline: float) -> str:
    return f"{full / baseline:.2f}x" if baseline else "—"


def markdown(results: dict[str, Any], command: str) -> str:
    cpu = cpu_model_name(Path("/proc/cpuinfo").read_text()) or platform.processor() or "unknown CPU"
    lines = [SECTION, "", f"`{command}`", "",
             f"Machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}. Goals: {GOALS}.", "",
             "Each database seeded twice in the run by `bench/seed.py` (the baseline at 1 % of the size); "
             "ratios are full ÷ baseline. Dashboard: GET /admin, median; exports: GET /admin/feedback.csv "
             "and .json read to the end (time), then again for the peak of Python memory allocated "
             "meanwhile (tracemalloc); "
             "story list: the busiest user's, median of 20.", "",
             "| database | rows (messages / conversations / stories) | dashboard | CSV export | JSON export | "
             "story list |", "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        base, full = runs["baseline"], runs["full"]
        for label, r in (("baseline", base), ("full", full)):
            rows = f"{r['seeded']['messages']:,} / {r['seeded']['conversations']:,} / {r['seeded']['stories']:,}"
            cells = [f"{r['dashboard_s'] * 1000:.0f} ms"]
            for fmt in ("csv", "json"):
                e = r[f"export_{fmt}"]
                cells.append(f"{e['s']:.2f} s, {e['bytes'] / 2**20:.1f} MB, peak {e['peak_mb']:.1f} MB")
            cells.append(f"{r['story_list_ms']:.1f} ms ({r['story_count']} stories)")
            lines.append(f"| {name} {label} | {rows} | " + " | ".join(cells) + " |")
        lines.append(f"| {name} ratio | | {_ratio(full['dashboard_s'], base['dashboard_s'])} | "
                     f"memory {_ratio(full['export_csv']['peak_mb'], base['export_csv']['peak_mb'])} | "
                     f"memory {_ratio(full['export_json']['peak_mb'], base['export_json']['peak_mb'])} | "
                     f"{_ratio(full['story_list_ms'], base['story_list_ms'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--messages", type=int, default=FULL["messages"])
    parser.add_argument("--baseline", type=float, default=0.01, help="the baseline's share of the size")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="replace the section of BENCHMARKS.md")
    args = parser.parse_args(argv)
    databases = [d.strip() for d in args.db.split(",") if d.strip()]
    results = asyncio.run(run(databases, args.messages, args.baseline, args.repeat))
    text = markdown(results, "python -m bench.data_scale " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(text)
    if args.write:
        benchmarks_md.write_section(benchmarks_md.BENCHMARKS, text, section=SECTION)


if __name__ == "__main__":
    main()
