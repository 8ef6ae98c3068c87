"""Rate limits in Redis: two processes' limiters spend one budget, and a Redis that is down falls back to per-process buckets."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import ratelimit
from bot.channels.ratelimit import RateLimit, RateLimiter
from bot.channels.ratelimit_redis import RedisRateLimiter, window_of
from bot.core.errors import ConfigError
from bot.redaction import safe_redis_url
from bot.settings import load_settings
from tests.conftest import free_port, start_redis_server

# 5 at once, then one every 10 s: a window of 5 requests per 50 s.
LIMIT = RateLimit(per_minute=6, burst=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> str:
    return f"tandem-test-{uuid.uuid4().hex[:8]}"


async def _limiter(url: str, prefix: str, **kwargs) -> RedisRateLimiter:
    return RedisRateLimiter(LIMIT, url, key_prefix=prefix, **kwargs)


async def test_two_processes_limiters_together_allow_only_the_burst(redis_url: str, prefix: str) -> None:
    # Two limiters as two workers would have them: nothing shared but Redis.
    first, second = await _limiter(redis_url, prefix), await _limiter(redis_url, prefix)
    try:
        waits = [await first.acquire("ip:192.0.2.1"), await second.acquire("ip:192.0.2.1"),
                 await second.acquire("ip:192.0.2.1"), await first.acquire("ip:192.0.2.1"),
                 await first.acquire("ip:192.0.2.1")]
        assert waits == [0.0] * 5
        refused_by_second = await second.acquire("ip:192.0.2.1")
        refused_by_first = await first.acquire("ip:192.0.2.1")
        assert 0 < refused_by_second <= 50 and 0 < refused_by_first <= 50
        # Another key has its own budget.
        assert await second.acquire("ip:192.0.2.2") == 0.0
    finally:
        await first.close()
        await second.close()


async def test_without_redis_each_process_counts_on_its_own() -> None:
    first, second = RateLimiter(LIMIT), RateLimiter(LIMIT)
    allowed = [await limiter.acquire("ip:192.0.2.1") == 0.0 for limiter in (first, second) for _ in range(6)]
    assert allowed.count(True) == 2 * LIMIT.burst


async def test_an_unreachable_redis_falls_back_to_per_process_buckets_and_says_so_once(caplog, prefix) -> None:
    caplog.set_level(logging.WARNING, logger="bot.channels.ratelimit_redis")
    clock = Clock()
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    limiter = await _limiter(url, prefix, clock=clock, retry_s=30)
    try:
        waits = [await limiter.acquire("user:7") for _ in range(7)]
        # The in-process bucket decided: the burst, then "wait".
        assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "per-process limits" in warnings[0]
        assert "hunter2-secret" not in warnings[0] and "***" in warnings[0]

        clock.now += 31  # the interval is over: Redis is tried again, and its failure said again
        assert await limiter.acquire("user:8") == 0.0
        assert len(caplog.records) == 2
    finally:
        await limiter.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_a_redis_that_comes_back_is_used_again(tmp_path: Path, prefix: str) -> None:
    clock = Clock()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    limiter = await _limiter(url, prefix, clock=clock, retry_s=5)
    server = None
    try:
        assert await limiter.acquire("user:9") == 0.0  # down: counted in process
        server = start_redis_server(port, tmp_path)
        assert await limiter.acquire("user:9") == 0.0  # still within the interval: in process
        assert not redis.Redis.from_url(url).keys(f"{prefix}*")
        clock.now += 6
        assert await limiter.acquire("user:9") == 0.0
        assert redis.Redis.from_url(url).keys(f"{prefix}*")  # now counted in Redis
    finally:
        await limiter.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


async def test_two_apps_on_one_redis_share_the_per_address_limit(redis_url: str) -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # An address of this run's own (the budget of 127.0.0.1 may hold an earlier run's requests).
    client_ip = {"X-Forwarded-For": f"2001:db8::{uuid.uuid4().hex[:4]}"}
    clients = []
    for _ in range(2):
        app = web.Application()
        ratelimit.install(app, per_ip=LIMIT, per_user=LIMIT, trust_forwarded_for=True, redis_url=redis_url)
        app.router.add_get("/api/hello", hello)
        clients.append(TestClient(TestServer(app)))
    try:
        for client in clients:
            await client.start_server()
        statuses = [(await clients[i % 2].get("/api/hello", headers=client_ip)).status for i in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        refused = await clients[0].get("/api/hello", headers=client_ip)
        assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 50
    finally:
        for client in clients:
            await client.close()


def test_the_redis_url_setting_comes_from_the_environment_and_is_checked(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path))
    assert load_settings().server.redis_url is None
    monkeypatch.setenv("TANDEM_SERVER__REDIS_URL", "redis://:pw-secret@127.0.0.1:6379/0")
    assert load_settings().server.redis_url.get_secret_value().endswith("6379/0")
    monkeypatch.setenv("TANDEM_SERVER__REDIS_URL", "http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="server.redis_url"):
        load_settings()


def test_a_bucket_becomes_a_window_with_the_same_burst_and_rate() -> None:
    assert (window_of(RateLimit(per_minute=600, burst=120)).amount,
            window_of(RateLimit(per_minute=600, burst=120)).multiples) == (120, 12)
    assert (window_of(RateLimit(per_minute=30, burst=10)).amount,
            window_of(RateLimit(per_minute=30, burst=10)).multiples) == (10, 20)
    tiny = window_of(RateLimit(per_minute=600, burst=1))  # 0.1 s: rounded up to 1 s of 10
    assert (tiny.amount, tiny.multiples) == (10, 1)
    assert safe_redis_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
