"""BENCHMARKS.md: replace or extend one benchmark's `## ` section, keeping the others' as they are."""

from __future__ import annotations

import re
from pathlib import Path

from bot.settings import PROJECT_ROOT

BENCHMARKS = PROJECT_ROOT / "BENCHMARKS.md"


def write_section(path: Path, text: str, *, section: str, append: bool = False) -> None:
    """`text` starts with its `section` heading, unless `append`: then it is added after the section's
    body (the heading is written first when the section is new)."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    match = re.search(rf"^{re.escape(section)}\s*$.*?(?=^## |\Z)", old, flags=re.M | re.S)
    if match is None:
        new = old.rstrip("\n") + "\n\n" + (f"{section}\n\n" if append else "") + text
    else:
        body = (match.group(0).rstrip("\n") + "\n\n" + text) if append else text
        new = old[:match.start()] + body.rstrip("\n") + "\n" + ("\n" if old[match.end():] else "") + old[match.end():]
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
