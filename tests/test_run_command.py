"""`tandem run` as a user starts it: a real process that migrates, serves, answers, and stops cleanly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.processes import terminate


def _request(url: str, body: dict | None = None, token: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_run_serves_the_api_on_localhost_and_stops_on_sigterm(tmp_path: Path, subprocess_env) -> None:
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = None
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline and base is None:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"running at (http://127\.0\.0\.1:\d+)/", line)
            if found:
                base = found.group(1)
        assert base, "".join(lines)
        assert _request(f"{base}/healthz")["status"] == "ok"
        opened = _request(f"{base}/api/conversations", {})
        reply = _request(f"{base}/api/conversations/{opened['conversation_id']}/messages", {"text": "help"},
                         opened["token"])
        assert "Tandem" in reply["text"]
        assert (tmp_path / "data" / "tandem.sqlite3").is_file()
    finally:
        terminate(process)
    assert process.returncode == 0


def test_run_stops_at_start_up_when_the_model_is_missing(tmp_path: Path, subprocess_env) -> None:
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path / "data"), "TANDEM_LM__MODEL": str(tmp_path / "no.gguf")}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--port", "0"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "lm.model" in result.stderr and "no.gguf" in result.stderr
    assert "Traceback" not in result.stderr
