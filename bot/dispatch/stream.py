"""TurnStream: the ReplyStream a channel gets from handle_turn, fed by the turn's task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from bot.core.messages import Reply, ReplyStream

_END = object()


class TurnStream(ReplyStream):
    """Pieces of reply text as they are made, then the finished Reply.

    Iterating is optional: a channel that only wants the answer awaits `reply()`.
    """

    def __init__(self) -> None:
        self._pieces: asyncio.Queue[object] = asyncio.Queue()
        self._reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._stored: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._cancel_hook: Callable[[], None] | None = None
        self.cancel_requested = False
        self.conversation_id: str | None = None
        # The message was stored before under the same client message id: the reply is its answer.
        self.duplicate = False
        # Also given every piece (the turn relay's publisher, for followers in other processes).
        self.mirror: Callable[[str], None] | None = None

    # --- producer side (the dispatcher) -----------------------------------

    def push(self, piece: str) -> None:
        if piece:
            self._pieces.put_nowait(piece)
            if self.mirror is not None:
                self.mirror(piece)

    def stored(self, message_id: int | None) -> None:
        """The user's message is stored as `message_id`; None: it is not and will not be."""
        if not self._stored.done():
            self._stored.set_result(message_id)

    def finish(self, reply: Reply) -> None:
        self.stored(None)  # a turn that ends without having stored the message never will
        if not self._reply.done():
            self._reply.set_result(reply)
        self._pieces.put_nowait(_END)

    def fail(self, exc: BaseException) -> None:
        self.stored(None)
        if not self._reply.done():
            self._reply.set_exception(exc)
        self._pieces.put_nowait(_END)

    def on_cancel(self, hook: Callable[[], None] | None) -> None:
        """Set what `cancel()` stops (the running generation), or None when nothing runs."""
        self._cancel_hook = hook
        if hook is not None and self.cancel_requested:
            hook()

    # --- consumer side (the channel) --------------------------------------

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            piece = await self._pieces.get()
            if piece is _END:
                return
            yield piece  # type: ignore[misc]

    async def reply(self) -> Reply:
        return await asyncio.shield(self._reply)

    async def user_message_id(self) -> int | None:
        return await asyncio.shield(self._stored)

    def cancel(self) -> None:
        """Stop the generation; the text so far is kept and stored as incomplete."""
        self.cancel_requested = True
        if self._cancel_hook is not None:
            self._cancel_hook()

    @property
    def done(self) -> bool:
        return self._reply.done()
