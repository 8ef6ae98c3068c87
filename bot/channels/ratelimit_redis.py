"""RedisRateLimiter: the web rate limits kept in Redis, so that every worker spends one budget.

With `server.redis_url` set, a client's budget is the same whichever process answers it (two
workers together allow what one would). A token bucket of `burst` refilled at `per_minute`
becomes a moving window of `burst` requests per `burst / per_minute` minutes (whole seconds),
the `limits` package's exact strategy: the same burst, the same rate over time.

A Redis that is down takes no request down: the limiter falls back to its in-process buckets
(per process, as without Redis), says so once, and tries Redis again after `retry_s`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio import storage as aio_storage
from limits.aio import strategies as aio_strategies

from bot.channels.ratelimit import RateLimit, RateLimiter
from bot.redaction import safe_redis_url

log = logging.getLogger(__name__)

KEY_PREFIX = "tandem-ratelimit"
# A request waits at most this long for Redis before it is decided by the in-process buckets.
REDIS_TIMEOUT_S = 0.25
# After a failure, Redis is left alone this long (one log line per such interval).
RETRY_S = 10.0


def window_of(limit: RateLimit) -> RateLimitItemPerSecond:
    """The moving window that allows what the token bucket `limit` allows."""
    window_s = max(1, round(limit.burst * 60 / limit.per_minute))
    # A window rounded up to one second keeps the rate by allowing more in it.
    amount = max(limit.burst, round(limit.per_minute * window_s / 60))
    return RateLimitItemPerSecond(amount, window_s)


class RedisRateLimiter:
    """The interface of RateLimiter, `await acquire(key)`: 0.0 when allowed, else the seconds to
    wait, spent from one budget in Redis that every process shares."""

    def __init__(self, limit: RateLimit, url: str, *, key_prefix: str = KEY_PREFIX,
                 timeout_s: float = REDIS_TIMEOUT_S, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.url = url
        self.retry_s = retry_s
        self._clock = clock
        self._local = RateLimiter(limit, clock=clock)
        self._retry_at = 0.0  # Redis is used again from this moment on
        self._down = False
        options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        self._aio_pool = redis.asyncio.ConnectionPool.from_url(url, **options)
        self._aio = aio_strategies.MovingWindowRateLimiter(aio_storage.RedisStorage(
            "async+" + url, implementation="redispy", connection_pool=self._aio_pool,
            key_prefix=key_prefix, wrap_exceptions=True))
        self._item = window_of(limit) if limit.enabled else None

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        if self._item is None:
            return 0.0
        if not self._redis_usable():
            return self._local.take(key, cost)
        try:
            if await self._aio.hit(self._item, key, cost=_whole(cost)):
                wait = 0.0
            else:
                wait = self._wait((await self._aio.get_window_stats(self._item, key)).reset_time)
        except Exception as exc:  # noqa: BLE001 - a Redis that fails must not take the request down
            self._failed(exc)
            return self._local.take(key, cost)
        self._answered()
        return wait

    async def close(self) -> None:
        await self._aio_pool.aclose()

    @staticmethod
    def _wait(reset_time: float) -> float:
        # reset_time: when the window's oldest request expires and frees a place (epoch seconds).
        return max(0.001, reset_time - time.time())

    def _redis_usable(self) -> bool:
        return self._clock() >= self._retry_at

    def _failed(self, exc: Exception) -> None:
        self._retry_at = self._clock() + self.retry_s
        self._down = True
        reason = exc.__cause__ or exc
        log.warning("rate limits: Redis at %s failed (%s: %s); per-process limits for the next %.0f s",
                    safe_redis_url(self.url), type(reason).__name__, reason, self.retry_s)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("rate limits: Redis at %s answers again; limits are shared", safe_redis_url(self.url))


def _whole(cost: float) -> int:
    return max(1, math.ceil(cost))
