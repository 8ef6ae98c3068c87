"""The WebSocket channel of the web widget: sessions, acknowledged and de-duplicated messages,
streamed replies with stop, thumbs and ratings, and the transcript on resume.

Protocol (JSON objects with a "type"); the client speaks first with `hello`:

  → hello {token?, conversation_id?, language?, timezone?}
                                    language: en|ru ("ru-RU" reads as ru), the first guess of the reply language;
                                    timezone: an IANA name ("Europe/Moscow"), given to every turn as
                                    metadata["timezone"]; anything else is ignored
  ← welcome {token, conversation_id, messages, rating, resumed, pending}
  → message {client_id, text}       ← ack {client_id, duplicate}, typing, delta {client_id, text}…, reply {client_id, …}
                                     ← rejected {client_id, message}  (refused input; nothing stored)
                                     ← error {code: "unavailable", client_id}  (not stored: send it again)
                                     ← error {code: "busy", client_id, retry_after}  (overloaded, not stored: again later)
  → stop {}                         the running generation stops; its reply comes, status "incomplete"
  → thumb {message_id, value: up|down}      ← thumb_saved {message_id, value}
  → rating {rating: 1..5, comment?}         ← rating_saved {rating, comment}
  → offer {kind: "rating"}                  the widget showed a rating request (for response rates)
  → new_conversation {}                     ← welcome (empty transcript)
  → delete_my_data {confirm: true}          ← deleted {}, then the socket closes (the token is gone)
  → ping {}                                 ← pong {}
  ← error {code, message, client_id?}
"""

from __future__ import annotations

import asyncio
import json
import logging
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from cachetools import FIFOCache

from bot.channels.http_api import BUSY_RETRY_S, reply_json
from bot.channels.origins import origin_allowed
from bot.channels.ratelimit import LIMITS, WebLimits, client_ip, retry_after_s, slow_down_message
from bot.channels.services import SERVICES, Services
from bot.core.errors import InputError, NotFound, StorageError
from bot.core.log_limits import LogThrottle
from bot.core.messages import MAX_CLIENT_MESSAGE_ID_CHARS, Incoming, Reply, ReplyStream
from bot.core.text import clean_comment, clean_user_text

log = logging.getLogger(__name__)
# Rate-limited frames are logged once per client a minute (a ping flood is thousands a minute).
RATE_LIMIT_LOG = LogThrottle()

CHANNEL = "web"
MAX_CLIENT_ID_CHARS = MAX_CLIENT_MESSAGE_ID_CHARS
# Ledger entries kept for de-duplication; a resend comes within seconds or minutes of the original.
LEDGER_SIZE = 20_000
LANGUAGES = ("en", "ru")
# The longest IANA time zone name is 32 characters ("America/Argentina/ComodRivadavia").
MAX_TIMEZONE_CHARS = 64
# What this channel itself says to the user, per language (the widget shows `message` as it is).
TEXTS = {
    "unavailable": {"en": "Sorry, I can't save that right now. Please try again in a moment.",
                    "ru": "Извини, сейчас я не могу это сохранить. Попробуй ещё раз чуть позже."},
    "internal": {"en": "Something went wrong on our side. Please try again.",
                 "ru": "У нас что-то сломалось. Попробуй ещё раз."},
}


def client_language(value: Any) -> str | None:
    """"en" or "ru" from what a client says ("ru", "ru-RU", "RU"); None for anything else."""
    if not isinstance(value, str):
        return None
    code = value.strip()[:2].lower()
    return code if code in LANGUAGES and (len(value.strip()) == 2 or value.strip()[2:3] in "-_") else None


def client_timezone(value: Any) -> str | None:
    """`value` when it names an IANA time zone that zoneinfo knows ("Europe/Moscow", "UTC"), else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_TIMEZONE_CHARS:
        return None
    if value == "localtime" or value.startswith("posix"):
        return None  # files in the tz database folder that name the server's zone, not the user's
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None  # unknown, a path outside the database, a NUL byte, a folder ("Europe")
    return value


@dataclass
class _Sent:
    """One client message the server accepted: its turn, and the reply once made."""

    stream: ReplyStream
    conversation_id: str
    reply: Reply | None = None


class ClientLedger:
    """Turns this process runs for client message ids, per conversation, so a socket that reconnects
    mid-answer follows the running turn (its stream) instead of waiting for the stored reply.
    Duplicates themselves are caught in SQL (the client id is the message's idempotency key), so
    this is only a fast path: bounded, oldest forgotten first."""

    def __init__(self, size: int = LEDGER_SIZE) -> None:
        self.size = size
        self._entries: FIFOCache[tuple[str, str], _Sent] = FIFOCache(maxsize=size)

    def get(self, conversation_id: str, client_id: str) -> _Sent | None:
        return self._entries.get((conversation_id, client_id))

    def add(self, conversation_id: str, client_id: str, sent: _Sent) -> None:
        self._entries[(conversation_id, client_id)] = sent

    def forget(self, conversation_id: str, client_id: str, sent: _Sent) -> None:
        """Drop the entry of a message that was never stored, so the client's resend is taken afresh."""
        if self._entries.get((conversation_id, client_id)) is sent:
            del self._entries[(conversation_id, client_id)]

    def running(self, conversation_id: str) -> list[tuple[str, _Sent]]:
        return [(cid, s) for (conv, cid), s in self._entries.items()
                if conv == conversation_id and s.reply is None and not getattr(s.stream, "done", False)]


LEDGER: web.AppKey[ClientLedger] = web.AppKey("ws_ledger", ClientLedger)


@dataclass
class WidgetSession:
    """One open socket: who it is (after hello), its conversation, and the tasks that forward turns."""

    services: Services
    ledger: ClientLedger
    ws: web.WebSocketResponse
    user_id: int | None = None
    conversation_id: str | None = None
    language: str | None = None
    timezone: str | None = None
    streams: set[ReplyStream] = field(default_factory=set)
    tasks: set[asyncio.Task] = field(default_factory=set)
    # Rate limits (None: unlimited): every frame counts against the client address, every
    # chat message against the user as well.
    limits: WebLimits | None = None
    ip: str = "unknown"

    async def send(self, payload: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(payload)
        except (ConnectionError, RuntimeError):
            # The socket went away mid-send; the turn is stored anyway and the client resumes.
            log.debug("ws send failed conversation=%s type=%s", self.conversation_id, payload.get("type"))

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send({"type": "error", "code": code, "message": message, **extra})

    def say(self, key: str) -> str:
        texts = TEXTS[key]
        return texts.get(self.language or "en") or texts["en"]

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        # Only the forwarding stops; the turns themselves run on and are stored.
        for task in list(self.tasks):
            task.cancel()

    # --- incoming frames ----------------------------------------------------------

    async def receive(self, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            await self.error("bad_request", "invalid JSON")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error("bad_request", "a frame is a JSON object with a `type`")
            return
        kind = frame["type"]
        if self.limits is not None:
            wait = await self.limits.per_ip.acquire(f"ip:{self.ip}")
            if wait == 0 and kind == "message" and self.user_id is not None:
                wait = await self.limits.per_user.acquire(f"user:{self.user_id}")
            if wait > 0:
                # One line per client a minute: a flood of frames must not become a flood of log lines.
                left_out = RATE_LIMIT_LOG.allow(("ws", self.ip, self.user_id))
                if left_out is not None:
                    log.info("ws rate limited ip=%s user=%s type=%s%s", self.ip, self.user_id, kind,
                             f" ({left_out} more frames refused since)" if left_out else "")
                await self.error("rate_limited", slow_down_message(wait), retry_after=retry_after_s(wait),
                                 client_id=frame.get("client_id") if isinstance(frame.get("client_id"), str) else None)
                return
        if kind == "ping":
            await self.send({"type": "pong"})
            return
        if self.user_id is None and kind != "hello":
            await self.error("hello_first", "send `hello` first")
            return
        handler = {
            "hello": self.hello, "message": self.message, "stop": self.stop, "thumb": self.thumb,
            "rating": self.rating, "offer": self.offer, "new_conversation": self.new_conversation,
            "delete_my_data": self.delete_my_data,
        }.get(kind)
        if handler is None:
            await self.error("bad_request", f"unknown frame type {kind[:40]!r}")
            return
        try:
            await handler(frame)
        except StorageError:
            log.exception("ws storage error conversation=%s type=%s", self.conversation_id, kind)
            await self.error("unavailable", self.say("unavailable"), client_id=frame.get("client_id"))

    async def hello(self, frame: dict[str, Any]) -> None:
        repo = self.services.conversations
        self.language = client_language(frame.get("language"))
        self.timezone = client_timezone(frame.get("timezone"))
        token = frame.get("token") if isinstance(frame.get("token"), str) else None
        user_id = await repo.user_by_token(token) if token else None
        new_token = None
        if user_id is None:
            user_id, new_token = await repo.create_token_user(CHANNEL)
        self.user_id = user_id
        wanted = frame.get("conversation_id")
        conversation_id = None
        if isinstance(wanted, str) and new_token is None:
            try:
                await repo.require_owner(wanted, user_id)
                conversation_id = wanted
            except NotFound:
                conversation_id = None  # someone else's or gone: look alike, and fall back to the current one
        if conversation_id is None:
            conversation_id = await repo.current_conversation(user_id, CHANNEL)
        self.conversation_id = conversation_id
        # Turns of this conversation still unanswered (the socket broke mid-answer): their replies
        # follow. This process's are in its ledger; another worker's (the socket reconnected here)
        # are found in SQL and taken again as resends, which follow the first turn to its answer.
        elsewhere = [] if new_token else [
            (client_id, text) for client_id, text in await repo.unanswered(conversation_id)
            if self.ledger.get(conversation_id, client_id) is None
        ]
        await self.welcome(token=new_token or token, resumed=new_token is None,
                           elsewhere=[client_id for client_id, _ in elsewhere])
        for client_id, sent in self.ledger.running(conversation_id):
            self.spawn(self._finish_later(client_id, sent))
        for client_id, text in elsewhere:
            self._take(client_id, text, duplicate=True)

    async def welcome(self, *, token: str | None, resumed: bool, elsewhere: Sequence[str] = ()) -> None:
        assert self.conversation_id is not None
        messages = await self.services.conversations.messages(self.conversation_id)
        feedback = await self.services.feedback.for_conversation(self.conversation_id)
        thumbs: dict[int, str] = {}
        rating = None
        for record in feedback:  # in id order, so the latest of each wins
            if record.kind == "thumb" and record.message_id is not None:
                thumbs[record.message_id] = "up" if record.value == 1 else "down"
            elif record.kind == "rating":
                rating = {"rating": record.value, "comment": record.comment}
        running = [cid for cid, _ in self.ledger.running(self.conversation_id)]
        await self.send({
            "type": "welcome", "token": token, "conversation_id": self.conversation_id, "resumed": resumed,
            "messages": [
                {"id": m.id, "author": m.author, "text": m.text, "skill": m.skill, "status": m.status,
                 "thumb": thumbs.get(m.id), "created_at": m.created_at.isoformat()}
                for m in messages
            ],
            "rating": rating, "pending": [*running, *elsewhere],
        })

    async def message(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
            await self.error("bad_request", f"`client_id` must be a string of 1–{MAX_CLIENT_ID_CHARS} characters")
            return
        assert self.user_id is not None and self.conversation_id is not None
        known = self.ledger.get(self.conversation_id, client_id)
        if known is not None:
            # A resend: acknowledge again and answer from the first turn; nothing is stored twice.
            if known.reply is not None:
                await self.send({"type": "ack", "client_id": client_id, "duplicate": True})
                await self.send({"type": "reply", "client_id": client_id, **reply_json(known.reply)})
            else:
                self.spawn(self._answer(client_id, known, self._finish_later, duplicate=True))
            return
        try:
            text = clean_user_text(frame.get("text"), self.services.settings.dispatcher.max_text_chars)
        except InputError as exc:
            await self.send({"type": "rejected", "client_id": client_id, "message": exc.in_language(self.language)})
            return
        self._take(client_id, text, duplicate=False)

    def _take(self, client_id: str, text: str, *, duplicate: bool) -> None:
        """Run the message's turn and answer it on this socket. The client id is also the message's
        idempotency key in SQL: a resend this ledger does not know (after a restart, or to another
        worker) is answered from storage by the dispatcher, streamed meanwhile where a relay is."""
        assert self.user_id is not None and self.conversation_id is not None
        stream = self.services.handle_turn(Incoming(
            CHANNEL, str(self.user_id), text, conversation_id=self.conversation_id, language=self.language,
            owner_id=self.user_id, client_message_id=client_id,
            metadata={"timezone": self.timezone} if self.timezone else {},
        ))
        sent = _Sent(stream, self.conversation_id)
        self.ledger.add(self.conversation_id, client_id, sent)
        self.spawn(self._answer(client_id, sent, self._forward, duplicate=duplicate))

    async def _answer(self, client_id: str, sent: _Sent, forward, *, duplicate: bool) -> None:
        """`ack` once the message is stored (the widget then drops it from its outbox), then the
        reply. A message that was not taken gets an error instead, `unavailable` (the database
        failed) or `busy` (overload): it stays in the widget's outbox, is sent again, and is
        taken afresh."""
        if await sent.stream.user_message_id() is None:
            reply = await sent.stream.reply()
            if reply.status != "rejected":  # not refused, yet not stored: the database failed, or busy
                self.ledger.forget(sent.conversation_id, client_id, sent)
                if reply.status == "busy":  # overloaded: nothing taken, send it again shortly
                    await self.error("busy", reply.text, client_id=client_id, retry_after=BUSY_RETRY_S)
                else:
                    await self.error("unavailable", reply.text, client_id=client_id)
                return
        duplicate = duplicate or getattr(sent.stream, "duplicate", False)
        await self.send({"type": "ack", "client_id": client_id, "duplicate": duplicate})
        await forward(client_id, sent)

    async def _forward(self, client_id: str, sent: _Sent) -> None:
        self.streams.add(sent.stream)
        try:
            await self.send({"type": "typing", "client_id": client_id})
            async for piece in sent.stream:
                await self.send({"type": "delta", "client_id": client_id, "text": piece})
            sent.reply = await sent.stream.reply()
        finally:
            self.streams.discard(sent.stream)
        await self.send({"type": "reply", "client_id": client_id, **reply_json(sent.reply)})

    async def _finish_later(self, client_id: str, sent: _Sent) -> None:
        """Answer a turn another socket started (a resend, or a resume mid-answer) when it ends."""
        await self.send({"type": "typing", "client_id": client_id})
        self.streams.add(sent.stream)
        try:
            reply = await sent.stream.reply()
        finally:
            self.streams.discard(sent.stream)
        sent.reply = reply
        await self.send({"type": "reply", "client_id": client_id, **reply_json(reply)})

    async def stop(self, frame: dict[str, Any]) -> None:
        for stream in list(self.streams):
            stream.cancel()

    async def thumb(self, frame: dict[str, Any]) -> None:
        message_id, value = frame.get("message_id"), frame.get("value")
        if value not in ("up", "down") or not isinstance(message_id, int) or isinstance(message_id, bool):
            await self.error("bad_request", '`thumb` needs an integer `message_id` and `value` "up" or "down"')
            return
        assert self.user_id is not None
        try:
            await self.services.feedback.add_thumb(message_id, self.user_id, value == "up", CHANNEL)
        except NotFound:
            await self.error("not_found", "no such message")
            return
        except InputError as exc:
            await self.error("bad_request", exc.in_language(self.language))
            return
        await self.send({"type": "thumb_saved", "message_id": message_id, "value": value})

    async def rating(self, frame: dict[str, Any]) -> None:
        rating, comment = frame.get("rating"), frame.get("comment")
        if comment is not None and not isinstance(comment, str):
            await self.error("bad_request", "`comment` must be a string")
            return
        assert self.user_id is not None and self.conversation_id is not None
        try:
            await self.services.feedback.add_rating(self.conversation_id, self.user_id, rating, comment, CHANNEL)
        except InputError as exc:
            await self.error("bad_request", exc.in_language(self.language))
            return
        # The comment as stored (cleaned), so the widget shows what a resume will show.
        await self.send({"type": "rating_saved", "rating": rating, "comment": clean_comment(comment)})

    async def offer(self, frame: dict[str, Any]) -> None:
        kind = frame.get("kind", "rating")
        if kind != "rating":
            await self.error("bad_request", "only rating offers are recorded")
            return
        assert self.conversation_id is not None
        await self.services.feedback.add_offer(self.conversation_id, "rating", CHANNEL)

    async def delete_my_data(self, frame: dict[str, Any]) -> None:
        if frame.get("confirm") is not True:
            await self.error("confirmation_required", "Send `confirm: true` to delete all your conversations, "
                             "stories and feedback; this cannot be undone.")
            return
        assert self.user_id is not None
        for stream in list(self.streams):
            stream.cancel()
        await self.services.conversations.delete_user(self.user_id)
        log.info("user data deleted user=%s channel=%s", self.user_id, CHANNEL)
        self.user_id = self.conversation_id = None
        await self.send({"type": "deleted"})
        await self.ws.close()

    async def new_conversation(self, frame: dict[str, Any]) -> None:
        assert self.user_id is not None
        self.conversation_id = await self.services.conversations.open_conversation(self.user_id, CHANNEL)
        await self.welcome(token=None, resumed=False)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request, services.settings.server.allowed_origins):
        log.info("ws refused origin=%s", origin)
        raise web.HTTPForbidden(reason="this origin may not embed the chat")
    # heartbeat: pings keep proxies from closing an idle socket and find dead clients.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=services.settings.server.max_ws_message_bytes)
    await ws.prepare(request)
    limits = request.app.get(LIMITS)
    session = WidgetSession(services, request.app[LEDGER], ws, limits=limits,
                            ip=client_ip(request, limits.trust_forwarded_for if limits else False))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    await session.receive(msg.data)
                except Exception:
                    # The socket's one catch-all: an error escaping the handler would be answered
                    # with an HTTP error page written into the open socket, which breaks the client.
                    log.exception("ws frame failed conversation=%s", session.conversation_id)
                    await session.error("internal", session.say("internal"))
            elif msg.type == WSMsgType.BINARY:
                await session.error("bad_request", "frames are JSON text, not binary")
            elif msg.type == WSMsgType.ERROR:
                log.info("ws error conversation=%s: %s", session.conversation_id, ws.exception())
                break
    finally:
        session.close()
    return ws


def add_routes(app: web.Application) -> None:
    app[LEDGER] = ClientLedger()
    app.router.add_get("/ws", websocket_handler)
