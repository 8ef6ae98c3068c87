"""SseStream: the one writer of Server-Sent Events in the HTTP API; it sends heartbeats and notices
promptly when the client has gone."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)
T = TypeVar("T")

# A comment line at least this often while nothing else is written: proxies close a quiet stream
# (nginx's proxy_read_timeout is 60 s), and a write to a client that left fails, which finds it.
HEARTBEAT_S = 15.0
# How often a waiting stream looks whether its client is still connected, so a closed tab is
# noticed within a second and not at the next write (the model can think for many seconds).
CLIENT_CHECK_S = 1.0
HEARTBEAT = b": keep-alive\n\n"


def sse_event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class SseStream:
    """One `text/event-stream` response. `relay` hands over a source's items while the client is
    there; `send` writes an event. Once the client has left, both stop quietly and
    `client_left` says so: a closed tab is an ordinary end, not an error to log."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        self.client_left = False
        self._written_at = time.monotonic()

    async def open(self) -> SseStream:
        await self.response.prepare(self.request)
        return self

    async def send(self, name: str, data: Any) -> bool:
        """Write one event; False when the client has left (then nothing more is written)."""
        return await self._write(sse_event(name, data))

    async def relay(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """The items of `source` as they come. While it is waited for, a heartbeat goes out every
        HEARTBEAT_S and the connection is looked at every CLIENT_CHECK_S; when the client has left,
        the wait for the next item is cancelled (which cancels a generator `source`) and this ends."""
        items = aiter(source)
        while not self.client_left:
            waiting = asyncio.ensure_future(anext(items))
            try:
                while not (await asyncio.wait({waiting}, timeout=CLIENT_CHECK_S))[0]:
                    if self._connection_closed():
                        self._left()
                        break
                    if time.monotonic() - self._written_at >= HEARTBEAT_S and not await self._write(HEARTBEAT):
                        break
            finally:
                if not waiting.done():
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
            if self.client_left:
                return
            try:
                item = waiting.result()
            except StopAsyncIteration:
                return
            yield item

    def _connection_closed(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def _write(self, data: bytes) -> bool:
        if self.client_left:
            return False
        try:
            await self.response.write(data)
        except ConnectionResetError:
            self._left()
            return False
        self._written_at = time.monotonic()
        return True

    def _left(self) -> None:
        if not self.client_left:
            self.client_left = True
            log.info("sse client left path=%s", self.request.path)
