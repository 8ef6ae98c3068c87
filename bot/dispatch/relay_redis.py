"""RedisTurnRelay: the turn relay (bot/dispatch/relay.py) over Redis pub/sub.

What goes over Redis is the whole text so far, never a piece: a follower that subscribes late
(or misses a message) still shows the right text. The producer publishes at most every
`every_s`, and not at all for a turn that ends within `first_after_s` (a non-generative turn
costs Redis nothing). The last text also sits under a key for `ttl_s`, so a follower that
subscribes after the last publish starts from it. A Redis that fails takes no turn down: the
follower then gets the whole reply once it is stored, as it would without Redis; one log line
per `retry_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import redis.asyncio
from redis.exceptions import RedisError

from bot.redaction import safe_redis_url

log = logging.getLogger(__name__)

KEY_PREFIX = "tandem-turn"


class RedisTurnRelay:
    """Turns streamed between processes through the Redis at `url`."""

    def __init__(self, url: str, *, first_after_s: float = 0.25, every_s: float = 0.1, ttl_s: float = 120.0,
                 timeout_s: float = 0.5, retry_s: float = 10.0, key_prefix: str = KEY_PREFIX) -> None:
        self.url = url
        self.first_after_s = first_after_s
        self.every_s = every_s
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.key_prefix = key_prefix
        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._quiet_until = 0.0

    def _key(self, message_id: int) -> str:
        return f"{self.key_prefix}:{message_id}"

    def publisher(self, message_id: int) -> _Publisher:
        return _Publisher(self, message_id)

    async def publish(self, message_id: int, text: str) -> None:
        key = self._key(message_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, text, ex=max(1, round(self.ttl_s)))
                pipe.publish(key, text)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("publish", exc)

    async def follow(self, message_id: int, until: asyncio.Future) -> AsyncIterator[str]:
        """The turn's text so far, each time it grows, until `until` is done."""
        key = self._key(message_id)
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(key)
            # Subscribed first, then the snapshot: nothing published in between is missed.
            snapshot = await self._redis.get(key)
            if snapshot:
                yield snapshot.decode("utf-8", "replace")
            while not until.done():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is not None and message.get("type") == "message":
                    yield message["data"].decode("utf-8", "replace")
        except (RedisError, OSError) as exc:
            self._failed("follow", exc)
        finally:
            try:
                await pubsub.aclose()
            except (RedisError, OSError):
                pass

    def _failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + self.retry_s
            log.warning("turn relay: Redis at %s failed to %s (%s: %s); replies reach other workers once "
                        "stored (next such line in %.0f s at the earliest)",
                        safe_redis_url(self.url), what, type(exc).__name__, exc, self.retry_s)

    async def close(self) -> None:
        await self._redis.aclose()


class _Publisher:
    """One turn's text so far, published from a task of its own: `add` never waits on Redis."""

    def __init__(self, relay: RedisTurnRelay, message_id: int) -> None:
        self._relay = relay
        self._message_id = message_id
        self._parts: list[str] = []
        self._changed = False
        self._task: asyncio.Task | None = None

    def add(self, piece: str) -> None:
        self._parts.append(piece)
        self._changed = True
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"relay turn {self._message_id}")

    async def _run(self) -> None:
        await asyncio.sleep(self._relay.first_after_s)
        while True:
            if self._changed:
                self._changed = False
                await self._relay.publish(self._message_id, "".join(self._parts))
            await asyncio.sleep(self._relay.every_s)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
