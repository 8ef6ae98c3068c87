"""bot.core.log_limits: one log line per cause per interval, and aiohttp's protocol errors as one line
without a traceback, against a real server fed malformed requests."""

from __future__ import annotations

import asyncio
import logging

from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_app
from bot.core.log_limits import LogThrottle, ThrottledErrors
from bot.models.fake import FakeLanguageModel
from bot.server import init_app


def test_a_cause_is_let_through_once_an_interval_and_then_says_how_many_were_left_out() -> None:
    now = [0.0]
    throttle = LogThrottle(interval_s=60, clock=lambda: now[0])
    assert throttle.allow("a") == 0
    assert [throttle.allow("a") for _ in range(5)] == [None] * 5
    assert throttle.allow("b") == 0  # another cause is not held back by the first
    now[0] = 59.9
    assert throttle.allow("a") is None
    now[0] = 60.0
    assert throttle.allow("a") == 6
    assert throttle.allow("a") is None


def test_the_causes_remembered_are_bounded(monkeypatch) -> None:
    from bot.core import log_limits

    monkeypatch.setattr(log_limits, "MAX_CAUSES", 3)
    throttle = LogThrottle(clock=lambda: 0.0)
    for cause in range(10):
        assert throttle.allow(cause) == 0
    assert len(throttle._causes) == 3 and throttle.allow(9) is None and throttle.allow(0) == 0


def record(message: str, exc: BaseException | None) -> logging.LogRecord:
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, message, ("10.0.0.1",),
                             (type(exc), exc, None) if exc else None)


def test_a_protocol_error_becomes_one_warning_line_without_its_traceback() -> None:
    errors = ThrottledErrors(LogThrottle(clock=lambda: 0.0))
    first = record("Error handling request from %s", ValueError("bad header"))
    assert errors.filter(first)
    assert first.exc_info is None and first.levelname == "WARNING"
    assert first.getMessage() == "Error handling request from 10.0.0.1: ValueError: bad header"
    assert not errors.filter(record("Error handling request from %s", ValueError("another")))
    assert errors.filter(record("Error handling request from %s", KeyError("other kind")))
    assert errors.filter(record("Serving on %s", None))  # lines without an exception are left alone


async def test_a_flood_of_malformed_requests_writes_one_line(settings, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    tandem = await build_app(settings, language_model=FakeLanguageModel())
    try:
        async with TestClient(TestServer(init_app(tandem))) as client:
            for _ in range(30):
                reader, writer = await asyncio.open_connection(client.host, client.port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n")
                await writer.drain()
                answer = await reader.read(200)
                assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], answer
                writer.close()
            assert (await client.get("/healthz")).status == 200
    finally:
        await tandem.close()
    lines = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "Traceback" not in caplog.text and lines[0].exc_info is None
    assert "\n" not in lines[0].getMessage() and "BadHttpMessage" in lines[0].getMessage()
