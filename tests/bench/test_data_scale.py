"""The data-at-scale benchmark's own logic (bench/data_scale.py) on a tiny database: it measures
through the real dashboard and exports, and writes its section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from bench import benchmarks_md
from bench.data_scale import SECTION, markdown, measure


async def test_a_tiny_run_measures_every_figure_and_writes_its_section(tmp_path: Path) -> None:
    size = {"messages": 400, "conversations": 40, "stories": 8, "users": 10}
    figures = await measure(f"sqlite+aiosqlite:///{tmp_path / 'tiny.sqlite3'}", size, repeat=1)
    assert figures["seeded"] == size and figures["feedback"] > 0
    assert figures["export_csv"]["bytes"] > 0 and figures["export_json"]["bytes"] > figures["export_csv"]["bytes"] / 2
    assert figures["dashboard_s"] > 0 and figures["story_count"] >= 1
    text = markdown({"sqlite": {"baseline": figures, "full": figures}}, "python -m bench.data_scale")
    assert text.startswith(SECTION) and "| sqlite ratio | | 1.00x |" in text
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Turns\n\nkept\n", encoding="utf-8")
    benchmarks_md.write_section(target, text, section=SECTION)
    benchmarks_md.write_section(target, text, section=SECTION)  # replaced, not added twice
    written = target.read_text(encoding="utf-8")
    assert written.count(SECTION) == 1 and "## Turns\n\nkept" in written
