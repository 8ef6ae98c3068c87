"""The JSON HTTP API channel: conversations, messages (optionally streamed as SSE), thumbs and ratings."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from cachetools import TTLCache

from bot.core.errors import InputError, NotFound
from bot.core.messages import MAX_CLIENT_MESSAGE_ID_CHARS, Incoming, Reply
from bot.core.text import clean_user_text
from bot.channels.ratelimit import spend_turn_budget
from bot.channels.services import SERVICES, Services
from bot.channels.sse import SseStream

log = logging.getLogger(__name__)

CHANNEL = "api"
# Seconds a client waits before sending again a turn refused for overload (status "busy").
BUSY_RETRY_S = 5
# Turns look their token up in this process's memory for this long, in at most this many entries.
TOKEN_CACHE_TTL_S = 30.0
TOKEN_CACHE_ENTRIES = 10_000


class TokenCache:
    """Bearer token → user id, remembered in process memory for `ttl_s` (bounded, least recently
    used first out), so that a conversation's turns skip the token's database transaction.

    Only the turn path uses it: a turn checks in its own first transaction that the conversation
    belongs to the user, so an entry outliving its user (deleted by another process, within
    `ttl_s`) still reaches nothing. DELETE /api/me forgets the user here at once. Unknown tokens
    are never remembered. Keys are SHA-256 digests, not the tokens themselves."""

    def __init__(self, ttl_s: float = TOKEN_CACHE_TTL_S, max_entries: int = TOKEN_CACHE_ENTRIES, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: TTLCache[bytes, int] = TTLCache(maxsize=max_entries, ttl=ttl_s, timer=clock)

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, token: str) -> int | None:
        return self._entries.get(self._key(token))

    def put(self, token: str, user_id: int) -> None:
        self._entries[self._key(token)] = user_id

    def forget_user(self, user_id: int) -> None:
        with self._entries.timer:  # one moment for the whole pass: no entry expires half-way through it
            for key in [k for k, uid in self._entries.items() if uid == user_id]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


TOKENS: web.AppKey[TokenCache] = web.AppKey("api_tokens", TokenCache)


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "conversation_id": reply.conversation_id, "message_id": reply.message_id,
        "user_message_id": reply.user_message_id, "text": reply.text, "skill": reply.skill,
        "intent": reply.intent, "confidence": reply.confidence, "suggestions": list(reply.suggestions),
        "status": reply.status, "data": reply.data, "duplicate": reply.duplicate,
    }


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    try:
        # Bytes, not request.json(): JSON is UTF-8 (RFC 8259) whatever charset the header names,
        # and decoding by an unknown one ("charset=nope") would raise LookupError, a 500.
        body = json.loads((await request.read()).decode("utf-8"))
    except (ValueError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError, arrays nested thousands deep.
        raise web.HTTPBadRequest(reason="invalid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


async def authenticated_user(request: web.Request, *, cached: bool = False) -> int:
    """The user behind the request's bearer token; 401 without a valid one. `cached`: the token
    may be answered from this process's TokenCache (only where the caller checks ownership itself)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise web.HTTPUnauthorized(reason="missing session token (Authorization: Bearer TOKEN)")
    cache = request.app.get(TOKENS) if cached else None
    if cache is not None and (user_id := cache.get(token)) is not None:
        return user_id
    user_id = await request.app[SERVICES].conversations.user_by_token(token)
    if user_id is None:
        raise web.HTTPUnauthorized(reason="unknown session token")
    if cache is not None:
        cache.put(token, user_id)
    return user_id


async def owned_conversation(request: web.Request) -> tuple[int, str]:
    user_id = await authenticated_user(request)
    conversation_id = request.match_info["conversation_id"]
    try:
        await request.app[SERVICES].conversations.require_owner(conversation_id, user_id)
    except NotFound:
        raise web.HTTPNotFound(reason="no such conversation") from None
    return user_id, conversation_id


async def open_conversation(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    if request.can_read_body:
        await read_json(request)  # no fields yet, but a malformed body is still an error
    token = None
    if request.headers.get("Authorization"):
        user_id = await authenticated_user(request)
    else:
        user_id, token = await services.conversations.create_token_user(CHANNEL)
    conversation_id = await services.conversations.open_conversation(user_id, CHANNEL)
    payload: dict[str, Any] = {"conversation_id": conversation_id}
    if token is not None:
        payload["token"] = token
    return web.json_response(payload, status=201)


async def list_conversations(request: web.Request) -> web.Response:
    user_id = await authenticated_user(request)
    conversations = await request.app[SERVICES].conversations.list_conversations(user_id)
    return web.json_response({"conversations": conversations})


async def list_messages(request: web.Request) -> web.Response:
    _, conversation_id = await owned_conversation(request)
    messages = await request.app[SERVICES].conversations.messages(conversation_id)
    return web.json_response({"messages": [
        {"id": m.id, "parent_id": m.parent_id, "author": m.author, "text": m.text, "skill": m.skill,
         "intent": m.intent, "status": m.status, "created_at": m.created_at.isoformat()}
        for m in messages
    ]})


async def post_message(request: web.Request) -> web.StreamResponse:
    # The conversation's owner is checked inside the turn's first transaction, not before it,
    # which is also what makes a remembered token safe here.
    user_id = await authenticated_user(request, cached=True)
    conversation_id = request.match_info["conversation_id"]
    services: Services = request.app[SERVICES]
    body = await read_json(request)
    try:
        text = clean_user_text(body.get("text"), services.settings.dispatcher.max_text_chars)
    except InputError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    client_id = body.get("client_id", request.headers.get("Idempotency-Key"))
    if client_id is not None and (not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_MESSAGE_ID_CHARS
                                  or not client_id.isprintable()):
        raise web.HTTPBadRequest(reason=f"`client_id` must be a string of 1–{MAX_CLIENT_MESSAGE_ID_CHARS} characters")
    await spend_turn_budget(request, user_id)
    incoming = Incoming(CHANNEL, str(user_id), text, conversation_id=conversation_id,
                        language=_language(body), owner_id=user_id, client_message_id=client_id)
    stream = services.handle_turn(incoming)
    if "text/event-stream" not in request.headers.get("Accept", "") and request.query.get("stream") != "1":
        reply = await stream.reply()
        if reply.status == "busy":  # refused for overload, nothing stored: the client sends it again
            return web.json_response({"error": {"code": "busy", "message": reply.text}}, status=503,
                                     headers={"Retry-After": str(BUSY_RETRY_S)})
        if reply.data.get("error") == "not_found":
            raise web.HTTPNotFound(reason="no such conversation")
        return web.json_response(reply_json(reply))
    if await stream.user_message_id() is None and (await stream.reply()).data.get("error") == "not_found":
        raise web.HTTPNotFound(reason="no such conversation")
    return await _stream_sse(request, stream)


async def _stream_sse(request: web.Request, stream) -> web.StreamResponse:
    sse = await SseStream(request).open()
    async for piece in sse.relay(stream):
        if not await sse.send("delta", {"text": piece}):
            break
    if not sse.client_left:  # one that left stops only the stream: the turn goes on and is stored
        await sse.send("reply", reply_json(await stream.reply()))
    return sse.response


async def post_thumb(request: web.Request) -> web.Response:
    user_id = await authenticated_user(request)
    try:
        message_id = int(request.match_info["message_id"])
    except ValueError:
        raise web.HTTPNotFound(reason="no such message") from None
    body = await read_json(request)
    thumb = body.get("thumb")
    if thumb not in ("up", "down"):
        raise web.HTTPBadRequest(reason='`thumb` must be "up" or "down"')
    try:
        feedback_id = await request.app[SERVICES].feedback.add_thumb(message_id, user_id, thumb == "up", CHANNEL)
    except NotFound:
        raise web.HTTPNotFound(reason="no such message") from None
    except InputError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    return web.json_response({"feedback_id": feedback_id}, status=201)


async def post_rating(request: web.Request) -> web.Response:
    user_id, conversation_id = await owned_conversation(request)
    body = await read_json(request)
    rating, comment = body.get("rating"), body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise web.HTTPBadRequest(reason="`comment` must be a string")
    try:
        feedback_id = await request.app[SERVICES].feedback.add_rating(
            conversation_id, user_id, rating, comment, CHANNEL
        )
    except InputError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    return web.json_response({"feedback_id": feedback_id}, status=201)


async def delete_my_data(request: web.Request) -> web.Response:
    """DELETE /api/me?confirm=true: everything of the token's user (conversations, messages,
    feedback, stories) is deleted and the token stops working. Without confirm: 409."""
    user_id = await authenticated_user(request)
    if request.query.get("confirm") != "true":
        return json_error(409, "confirmation_required",
                          "This deletes all your conversations, stories and feedback and cannot be undone; "
                          "repeat with ?confirm=true.")
    await request.app[SERVICES].conversations.delete_user(user_id)
    if (cache := request.app.get(TOKENS)) is not None:
        cache.forget_user(user_id)
    log.info("user data deleted user=%s channel=%s", user_id, CHANNEL)
    return web.Response(status=204)


def _language(body: dict[str, Any]) -> str | None:
    language = body.get("language")
    return language if language in ("en", "ru") else None


def add_routes(app: web.Application) -> None:
    app[TOKENS] = TokenCache()
    app.router.add_post("/api/conversations", open_conversation)
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_get("/api/conversations/{conversation_id}/messages", list_messages)
    app.router.add_post("/api/conversations/{conversation_id}/messages", post_message)
    app.router.add_post("/api/conversations/{conversation_id}/rating", post_rating)
    app.router.add_post("/api/messages/{message_id}/feedback", post_thumb)
    app.router.add_delete("/api/me", delete_my_data)
