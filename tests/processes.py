"""Stopping a `tandem` child process the way an operator does (SIGTERM), for the tests that start one."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM, then wait; a process that does not stop in time is killed and the test fails."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
