"""LogThrottle: at most one log line per cause per interval, for causes a client controls (malformed
requests, dropped uploads, rate-limited frames), so that a flood of them cannot flood the log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

from cachetools import LRUCache

# How long one cause stays quiet after it was logged; the next line it writes says how many were left out.
INTERVAL_S = 60.0
# Causes remembered at once (a flood of distinct ones forgets the least recently seen, it does not grow).
MAX_CAUSES = 1024


class LogThrottle:
    """`allow(cause)` is the count of lines left out since the cause was last logged (0 the first
    time) when a line may be written now, else None."""

    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        # cause -> [logged_at, left out], the least recently seen forgotten first
        self._causes: LRUCache[Hashable, list[float | int]] = LRUCache(maxsize=MAX_CAUSES)
        self._lock = threading.Lock()

    def allow(self, cause: Hashable) -> int | None:
        now = self._clock()
        with self._lock:
            seen = self._causes.get(cause)
            if seen is not None and now - seen[0] < self.interval_s:
                seen[1] += 1
                return None
            left_out = int(seen[1]) if seen is not None else 0
            self._causes[cause] = [now, 0]
            return left_out


class ThrottledErrors(logging.Filter):
    """For aiohttp's server logger: a request that fails in the protocol (a malformed request line,
    an upload the client dropped) is one line per kind of error per interval, without the
    traceback; the client caused it, and the server went on."""

    def __init__(self, throttle: LogThrottle | None = None) -> None:
        super().__init__()
        self.throttle = throttle or LogThrottle()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        # By the message's template, not its text: "Error handling request from %s" names the client.
        left_out = self.throttle.allow((record.name, str(record.msg), type(exc).__name__))
        if left_out is None:
            return False
        message = record.getMessage()
        record.msg = "%s: %s: %s" + (f" ({left_out} more like it left out)" if left_out else "")
        record.args = (message, type(exc).__name__, " ".join(str(exc).split())[:200])  # one line
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def throttle_server_errors(logger_name: str = "aiohttp.server") -> None:
    """Install ThrottledErrors on aiohttp's server logger once (the composition root calls it)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ThrottledErrors) for f in logger.filters):
        logger.addFilter(ThrottledErrors())
