"""Secret redaction: configured secrets (tokens, passwords) are replaced in every log record.

Libraries log what they see: httpx logs Telegram request URLs (which hold the bot token),
a driver error can quote a connection string. So rather than trusting each call site, the
record factory scrubs every record's message, and its traceback, once at creation, whatever
logger or handler it goes to.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

MASK = "***"
# Shorter values would mask ordinary words; no real secret is this short.
MIN_SECRET_CHARS = 6

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    """`text` with every registered secret replaced by MASK."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def protect(values: Iterable[str | None]) -> None:
    """Register secrets to hide from now on (and install the record factory once)."""
    global _installed
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)
        if not _installed:
            previous = logging.getLogRecordFactory()

            def factory(*args, **kwargs) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                if _secrets:
                    _scrub(record)
                return record

            logging.setLogRecordFactory(factory)
            _installed = True


def database_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except Exception:  # noqa: BLE001 - a malformed URL has no password to find
        return None


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        cleaned = redact(text)
        if cleaned != text:
            # Formatters use a record's exc_text as is when it is set.
            record.exc_text = cleaned


def safe_redis_url(url: str) -> str:
    """The URL with its password hidden, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
