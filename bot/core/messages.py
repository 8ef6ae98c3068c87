"""What comes into a turn (Incoming) and what goes out (Reply), free of any channel's types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Author = Literal["user", "bot"]
# busy: refused for overload before anything was stored (send it again later).
ReplyStatus = Literal["complete", "incomplete", "fallback", "rejected", "busy"]
# The longest client message id (messages.client_id): the widget's, the API's, a Telegram update's.
MAX_CLIENT_MESSAGE_ID_CHARS = 64


@dataclass(frozen=True)
class Incoming:
    """One user message as a channel hands it to the dispatcher.

    `conversation_id` names a known conversation (the HTTP API and the widget know it);
    when it is None the dispatcher continues the user's current conversation on that
    channel, or opens one (terminal, Telegram). A named conversation must belong to
    `owner_id` (the stored user id, for channels that authenticated the user themselves)
    or else to the channel's user `user_id`. `client_message_id` is the client's own id of
    the message (widget, API, Telegram update): a message sent again with the same id is
    answered from storage, never run twice.
    """

    channel: str
    user_id: str
    text: str
    conversation_id: str | None = None
    user_name: str | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    owner_id: int | None = None
    client_message_id: str | None = None
    # A button or command addressed to one skill (a rating click to feedback, a language button):
    # the turn goes to that skill, whatever holds the conversation; its values are in `metadata`.
    skill: str | None = None


@dataclass(frozen=True)
class Reply:
    """The bot's finished answer to one turn."""

    conversation_id: str
    text: str
    skill: str
    message_id: int | None = None
    user_message_id: int | None = None
    suggestions: tuple[str, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    status: ReplyStatus = "complete"
    data: dict[str, Any] = field(default_factory=dict)
    latency_ms: int | None = None
    # The answer of an earlier copy of this message (same client_message_id), from storage.
    duplicate: bool = False


class ReplyStream:
    """What `handle_turn` returns: iterate it for text pieces as they are made, or await `reply()`.

    The turn runs as its own task, so a channel that stops listening (a closed socket)
    does not stop the turn from being answered and stored; `cancel()` does stop it
    (a user pressing stop), and the part generated so far is kept, marked incomplete.
    This is the interface only; the dispatcher provides the implementation.
    """

    def __aiter__(self):  # pragma: no cover - interface
        raise NotImplementedError

    async def reply(self) -> Reply:  # pragma: no cover - interface
        raise NotImplementedError

    async def user_message_id(self) -> int | None:  # pragma: no cover - interface
        """The id of the user's message once it is stored, or None when the turn ended without
        storing it (refused, or the database failed): what a channel may acknowledge."""
        raise NotImplementedError

    def cancel(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError
