"""Per-client-IP and per-user rate limits for the web channels: token buckets and the aiohttp middleware.

Limits protect the bot, not the data: a client over its limit gets a clear "slow down" answer
(HTTP 429 with Retry-After, or a `rate_limited` WebSocket frame) and nothing is processed or
stored for that request. The buckets live in process memory (they are no conversation
state, and a restart that forgets them only forgives clients), so each worker of `tandem run
--workers N` has its own; with `server.redis_url` set they live in Redis instead and all
workers spend one budget (bot/channels/ratelimit_redis.py).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

# Paths whose requests count against the client IP's budget: the API, the widget's socket
# handshake and the dashboard (its login form included, against guessing the admin token).
# Static files, the demo page and /healthz cost nothing worth limiting.
LIMITED_PREFIXES = ("/api/", "/ws", "/admin")
# Buckets kept per limiter; the least recently seen keys are forgotten first (a forgotten
# key starts again with a full bucket, which only ever forgives).
MAX_KEYS = 100_000


class RateLimit(BaseModel):
    """A token bucket: `burst` requests at once, refilled at `per_minute`; 0 turns the limit off."""

    model_config = ConfigDict(extra="forbid")

    per_minute: float = Field(ge=0)
    burst: int = Field(ge=1)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


# Defaults live in subclasses, so that setting one field (TANDEM_SERVER__RATE_LIMIT_PER_IP__BURST)
# keeps the other's default.
class IpRateLimit(RateLimit):
    """Requests per client address to /api, /ws (handshake and every frame) and /admin."""

    per_minute: float = Field(600, ge=0)
    burst: int = Field(120, ge=1)


class UserRateLimit(RateLimit):
    """Chat turns per user (messages, story passages and generations): people type slower."""

    per_minute: float = Field(30, ge=0)
    burst: int = Field(10, ge=1)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets by key (an IP address, a user id); `take(key)` says how long to wait, 0 = go."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: LRUCache[str, _Bucket] = LRUCache(maxsize=max_keys)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend `cost` from `key`'s bucket. Returns 0.0 when allowed, else the seconds until it would be."""
        if not self.limit.enabled:
            return 0.0
        now = self._clock()
        rate = self.limit.per_minute / 60.0  # tokens per second
        bucket = self._buckets.get(key)  # a hit makes the key the most recently used
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
        else:
            bucket.tokens = min(float(self.limit.burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / rate

    async def acquire(self, key: str, cost: float = 1.0) -> float:
        """`take` for coroutines, the same call as the Redis limiter's."""
        return self.take(key, cost)

    async def close(self) -> None:
        pass


class Limiter(Protocol):
    """What the web channels call: RateLimiter (per process) or RedisRateLimiter (shared)."""

    limit: RateLimit

    async def acquire(self, key: str, cost: float = 1.0) -> float: ...

    async def close(self) -> None: ...


@dataclass
class WebLimits:
    """The limiters of one web application: by client address, and by user for chat turns."""

    per_ip: Limiter
    per_user: Limiter
    trust_forwarded_for: bool = False


LIMITS: web.AppKey[WebLimits] = web.AppKey("rate_limits", WebLimits)


def client_ip(request: web.Request, trust_forwarded_for: bool) -> str:
    """The client's address; behind a trusted reverse proxy, the last hop it reports."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            try:
                return str(ipaddress.ip_address(hops[-1]))
            except ValueError:
                pass  # a malformed header: fall back to the peer address
    return request.remote or "unknown"


def retry_after_s(wait_s: float) -> int:
    """Whole seconds to tell a client to wait (at least 1)."""
    return max(1, math.ceil(wait_s))


def slow_down_message(wait_s: float) -> str:
    return f"Slow down: too many requests. Please try again in {retry_after_s(wait_s)} s."


def too_many_requests(wait_s: float) -> web.HTTPTooManyRequests:
    """The 429 to raise; the JSON error middleware (bot/server.py) answers it with Retry-After."""
    return web.HTTPTooManyRequests(reason=slow_down_message(wait_s),
                                   headers={"Retry-After": str(retry_after_s(wait_s))})


async def spend_turn_budget(request: web.Request, user_id: int) -> None:
    """Spend one of `user_id`'s chat turns, or raise 429 ("slow down") when none is left."""
    limits = request.app.get(LIMITS)
    wait = 0.0 if limits is None else await limits.per_user.acquire(f"user:{user_id}")
    _refuse_if_waiting(request, user_id, wait)


def _refuse_if_waiting(request: web.Request, user_id: int, wait: float) -> None:
    if wait > 0:
        log.info("rate limited user=%s path=%s wait_s=%.1f", user_id, request.path, wait)
        raise too_many_requests(wait)


@web.middleware
async def rate_limit_by_ip(request: web.Request, handler) -> web.StreamResponse:
    limits = request.app[LIMITS]
    if request.method != "OPTIONS" and request.path.startswith(LIMITED_PREFIXES):
        ip = client_ip(request, limits.trust_forwarded_for)
        wait = await limits.per_ip.acquire(f"ip:{ip}")
        if wait > 0:
            log.info("rate limited ip=%s path=%s wait_s=%.1f", ip, request.path, wait)
            raise too_many_requests(wait)
    return await handler(request)


def install(app: web.Application, *, per_ip: RateLimit, per_user: RateLimit,
            trust_forwarded_for: bool = False, redis_url: str | None = None) -> WebLimits:
    """Add the limiters and the per-IP middleware (call before the app starts); with `redis_url`
    the budgets are kept in Redis, shared by every process that uses the same Redis."""
    if redis_url:
        from bot.channels.ratelimit_redis import RedisRateLimiter  # only a deployment with Redis needs it

        limits = WebLimits(RedisRateLimiter(per_ip, redis_url), RedisRateLimiter(per_user, redis_url),
                           trust_forwarded_for)
    else:
        limits = WebLimits(RateLimiter(per_ip), RateLimiter(per_user), trust_forwarded_for)
    app[LIMITS] = limits
    app.middlewares.append(rate_limit_by_ip)

    async def close_limiters(_app: web.Application) -> None:
        await limits.per_ip.close()
        await limits.per_user.close()

    app.on_cleanup.append(close_limiters)
    return limits
