"""The turns benchmark's own logic (bench/turns.py): a tiny closed-loop level against an in-process
server, the server-process walk, and the BENCHMARKS.md section it writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from bench.turns import SECTION, markdown, run_level, server_pids, write_section
from bot.settings import Settings


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    from bot.app import build_app
    from bot.models.fake import FakeLanguageModel
    from bot.server import init_app

    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.sqlite3'}"
    tandem = await build_app(Settings(data_dir=tmp_path / "data", database_url=SecretStr(url)),
                             language_model=FakeLanguageModel())
    runner = web.AppRunner(init_app(tandem), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await tandem.close()


async def test_a_tiny_closed_loop_level_counts_help_turns_without_errors(base_url: str) -> None:
    figures = await run_level(base_url, 3, os.getpid(), warm_up_s=0.2, duration_s=1.0)
    assert figures["turns"] > 3 and figures["error_count"] == 0
    assert figures["skills"] == {"help": figures["turns"]}
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["server_cpu_ms_per_turn"] > 0


def test_the_server_processes_leave_out_the_model_workers() -> None:
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    plain, model = subprocess.Popen(sleep), subprocess.Popen([*sleep, "bot.models.worker"])
    try:
        for child in (plain, model):  # until each has exec'd (before, it shows pytest's command line)
            while b"time.sleep" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
                time.sleep(0.01)
        pids = server_pids(os.getpid())
        assert os.getpid() in pids and plain.pid in pids and model.pid not in pids
    finally:
        for child in (plain, model):
            child.kill()
            child.wait()


def _report(db: str = "sqlite") -> dict:
    level = {"level": 10, "turns": 100, "turns_per_s": 10.0, "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0,
             "errors": {}, "error_count": 0, "server_cpu_ms_per_turn": 4.0, "server_cores": 0.5,
             "generator_cpu_ms_per_turn": 0.5, "machine_cpu_busy": 0.6}
    return {"command": "bench.turns", "load_average_end": [1.0, 1.0, 1.0],
            "machine": {"cpu": "X", "cpus": 2, "avx2": True, "avx512f": False, "amx": False,
                        "load_average": [1.0, 1.0, 1.0]},
            "settings": {"warm_up_s": 1, "duration_s": 5, "env": {}},
            "results": [{"db": db, "workers": 1, "levels": [level],
                         "server_log": {"tracebacks": 0, "error_lines": 0, "warning_lines": 0, "warnings": {}}}]}


def test_writing_replaces_only_the_turns_section(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Load\n\nload text\n\n## Turns\n\nold table\n\n## Later\n\nkept\n")
    write_section(path, markdown(_report()), append=False)
    text = path.read_text()
    assert "old table" not in text and "load text" in text and text.endswith("## Later\n\nkept\n")
    assert text.count(SECTION) == 1 and "| sqlite | 1 | 10 | 10.0 |" in text
    write_section(path, markdown(_report("postgres"), "### Another run"), append=True)
    text = path.read_text()
    assert text.count(SECTION) == 1 and text.index("| sqlite |") < text.index("### Another run") \
        < text.index("| postgres |") < text.index("## Later")


def test_writing_adds_the_section_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Load\n\nload text\n")
    write_section(path, markdown(_report()), append=False)
    assert path.read_text().startswith("# Benchmarks\n\n## Load\n\nload text\n\n## Turns\n")
