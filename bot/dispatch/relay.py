"""TurnRelay: how a running turn's reply reaches another process that answers a resend of it.

A widget that reconnects lands on whichever worker the kernel or the balancer picks. Its resent
message (or, on resume, the stored message still waiting for its answer) is a duplicate there,
answered from storage once the first copy's turn ends; meanwhile that worker follows the turn
through the relay and streams what the first worker has written, then the rest as it comes.
The one implementation is Redis pub/sub (bot/dispatch/relay_redis.py), used when
`server.redis_url` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol


class RelayPublisher(Protocol):
    """One turn's pieces as they are made; `add` never waits."""

    def add(self, piece: str) -> None: ...

    def close(self) -> None: ...


class TurnRelay(Protocol):
    def publisher(self, message_id: int) -> RelayPublisher: ...

    def follow(self, message_id: int, until: asyncio.Future) -> AsyncIterator[str]:
        """The turn's whole text so far, each time it grows, until `until` is done."""
        ...

    async def close(self) -> None: ...
