"""A fake Telegram Bot API server (aiohttp on 127.0.0.1) speaking the real protocol, for end-to-end tests.

Point python-telegram-bot at `api.base_url`; inject updates with `send_text`, `click`, `send_update`;
read what the bot did in `api.calls` and `api.messages`; make calls fail with `api.fail(...)`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 7000001
BOT_USERNAME = "TandemTestBot"
MAX_TEXT_UTF16 = 4096
MAX_CALLBACK_ANSWER_CHARS = 200  # answerCallbackQuery's text (the toast)
# Parameters that stay strings even when they look like JSON ("42" as a message text).
_STRING_PARAMS = {"text", "caption", "callback_query_id", "secret_token", "url", "parse_mode", "action",
                  "description", "short_description", "language_code", "ip_address"}


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class Fault:
    """What the next matching call(s) get instead of an answer."""

    method: str
    kind: str            # "error" (status + description), "drop" (connection closed), "slow" (delay, then answer)
    times: int = 1
    status: int = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    delay: float = 0.0


class FakeBotApi:
    def __init__(self, token: str = "123456:TEST-token-do-not-log") -> None:
        self.token = token
        self.calls: list[ApiCall] = []
        self.faults: list[Fault] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}   # (chat_id, message_id) -> message
        self.chats: dict[int, dict[str, Any]] = {}
        self.webhook: dict[str, Any] | None = None
        self.commands: list[dict[str, Any]] = []  # the menu for every language
        self.commands_by_language: dict[str, list[dict[str, Any]]] = {}  # "" for every language, "ru", ...
        self._updates: list[dict[str, Any]] = []
        # Callback queries sent to the bot, and their answers: each can be answered once (text or None).
        self._queries: set[str] = set()
        self.query_answers: dict[str, str | None] = {}
        # A user's Telegram client language (language_code), where it is not English.
        self.user_languages: dict[int, str] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Condition()
        self._called = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- server lifecycle -------------------------------------------------------------------

    async def start(self) -> FakeBotApi:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- injecting updates -------------------------------------------------------------------

    def user(self, user_id: int, first_name: str = "Ann", language_code: str = "en") -> dict[str, Any]:
        language_code = self.user_languages.get(user_id, language_code)
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}

    def chat(self, chat_id: int, kind: str = "private", title: str | None = None) -> dict[str, Any]:
        chat = {"id": chat_id, "type": kind}
        if kind == "private":
            chat["first_name"] = "Ann"
        else:
            chat["title"] = title or "Writers' room"
        self.chats[chat_id] = chat
        return chat

    async def send_update(self, update: dict[str, Any]) -> int:
        if "update_id" not in update:
            update = {"update_id": next(self._update_ids), **update}
        query = update.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self._queries.add(query["id"])
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()
        return update["update_id"]

    def _user_message(self, chat_id: int, user_id: int, *, chat_type: str = "private",
                      **content: Any) -> dict[str, Any]:
        chat = self.chats.get(chat_id) or self.chat(chat_id, chat_type)
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                   "from": self.user(user_id), **content}
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def send_text(self, chat_id: int, text: str, *, user_id: int | None = None, chat_type: str = "private",
                        reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """A user's text message; commands and @mentions get their entities as Telegram sets them."""
        update = self.text_update(chat_id, text, user_id=user_id, chat_type=chat_type, reply_to=reply_to)
        await self.send_update(update)
        return update["message"]

    def text_update(self, chat_id: int, text: str, *, user_id: int | None = None, chat_type: str = "private",
                    reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """The update of a user's text message with its update id, not queued: what a webhook is posted."""
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        mention = f"@{BOT_USERNAME}"
        if mention in text:
            entities.append({"type": "mention", "offset": _utf16_offset(text, text.index(mention)),
                             "length": len(mention)})
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        message = self._user_message(chat_id, user_id or chat_id, chat_type=chat_type, **content)
        return {"update_id": next(self._update_ids), "message": message}

    async def send_content(self, chat_id: int, kind: str, *, user_id: int | None = None,
                           chat_type: str = "private") -> dict[str, Any]:
        """A non-text message: sticker, photo, voice, document or location."""
        samples: dict[str, Any] = {
            "sticker": {"file_id": "s1", "file_unique_id": "s1u", "type": "regular", "width": 512, "height": 512,
                        "is_animated": False, "is_video": False},
            "photo": [{"file_id": "p1", "file_unique_id": "p1u", "width": 90, "height": 90}],
            "voice": {"file_id": "v1", "file_unique_id": "v1u", "duration": 2},
            "document": {"file_id": "d1", "file_unique_id": "d1u", "file_name": "notes.pdf"},
            "location": {"latitude": 52.5, "longitude": 13.4},
        }
        message = self._user_message(chat_id, user_id or chat_id, chat_type=chat_type, **{kind: samples[kind]})
        await self.send_update({"message": message})
        return message

    async def send_edit(self, message: dict[str, Any], new_text: str) -> None:
        edited = {**message, "text": new_text, "edit_date": int(time.time())}
        await self.send_update({"edited_message": edited})

    async def click(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None) -> str:
        """A click on an inline button of a bot message; returns the callback query id."""
        update = self.click_update(chat_id, message_id, data, user_id=user_id)
        await self.send_update(update)
        return update["callback_query"]["id"]

    def click_update(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None) -> dict[str, Any]:
        """The update of a click, not queued (what a webhook is posted). The message is as it looks at the
        click, as Telegram sends it: later edits do not change an update already made."""
        query_id = f"cq{next(self._update_ids)}"
        self._queries.add(query_id)
        message = copy.deepcopy(self.messages[(chat_id, message_id)])
        return {"update_id": next(self._update_ids), "callback_query": {
            "id": query_id, "from": self.user(user_id or chat_id), "message": message,
            "chat_instance": f"ci{chat_id}", "data": data,
        }}

    async def click_button(self, chat_id: int, label: str, *, user_id: int | None = None) -> str:
        """Click the button labelled `label` on the newest bot message of the chat that has one."""
        for (chat, message_id), message in sorted(self.messages.items(), key=lambda kv: -kv[0][1]):
            if chat != chat_id:
                continue
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        return await self.click(chat_id, message_id, button["callback_data"], user_id=user_id)
        raise AssertionError(f"no button {label!r} in chat {chat_id}: {self.bot_messages(chat_id)}")

    # --- faults ---------------------------------------------------------------------------

    def fail(self, method: str, *, status: int = 500, description: str = "Internal Server Error",
             retry_after: int | None = None, times: int = 1) -> None:
        self.faults.append(Fault(method, "error", times, status, description, retry_after))

    def drop(self, method: str, times: int = 1) -> None:
        self.faults.append(Fault(method, "drop", times))

    def slow(self, method: str, delay: float, times: int = 1) -> None:
        self.faults.append(Fault(method, "slow", times, delay=delay))

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    # --- reading what the bot did ----------------------------------------------------------

    async def wait_answer(self, query_id: str, timeout: float = 10.0) -> str | None:
        """The text the bot answered a callback query with (None: answered without a toast)."""
        await self.wait_for(lambda: query_id in self.query_answers, timeout)
        return self.query_answers[query_id]

    def calls_of(self, method: str, chat_id: int | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method
                and (chat_id is None or c.params.get("chat_id") == chat_id)]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in the chat as they look now (after edits), oldest first."""
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id
                and m.get("from", {}).get("id") == BOT_ID]

    def texts(self, chat_id: int) -> list[str]:
        return [m.get("text", "") for m in self.bot_messages(chat_id)]

    def buttons(self, message: dict[str, Any]) -> list[str]:
        return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (checked after every call the bot makes)."""
        deadline = time.monotonic() + timeout
        async with self._called:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting; calls: {[c.method for c in self.calls][-30:]}")
                try:
                    await asyncio.wait_for(self._called.wait(), remaining)
                except TimeoutError:
                    pass

    async def wait_messages(self, chat_id: int, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.bot_messages(chat_id)) >= count, timeout)
        return self.bot_messages(chat_id)

    async def wait_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[ApiCall]:
        await self.wait_for(lambda: len(self.calls_of(method)) >= count, timeout)
        return self.calls_of(method)

    # --- the protocol ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await _read_params(request)
        fault = self._take_fault(method)
        if fault is not None and fault.kind == "drop":
            request.transport.close()  # the client sees the connection die without an answer
            raise asyncio.CancelledError
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        call = ApiCall(method, params, time.monotonic(), files)
        self.calls.append(call)
        try:
            if fault is not None and fault.kind == "error":
                extra = {"parameters": {"retry_after": fault.retry_after}} if fault.retry_after else {}
                return _error(fault.status, fault.description, **extra)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                return _error(404, "Not Found: method not found")
            result = await handler(params, files)
            if isinstance(result, web.Response):
                return result
            return web.json_response({"ok": True, "result": result})
        finally:
            async with self._called:
                self._called.notify_all()

    def _bot_user(self) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Tandem", "username": BOT_USERNAME}

    async def _api_getMe(self, params, files):
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _api_getUpdates(self, params, files):
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        async with self._new_update:
            while not self._updates and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        return list(self._updates[: int(params.get("limit") or 100)])

    async def _api_deleteWebhook(self, params, files):
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_setWebhook(self, params, files):
        self.webhook = params
        return True

    async def _api_setMyCommands(self, params, files):
        language = params.get("language_code") or ""
        self.commands_by_language[language] = params["commands"]
        if not language:
            self.commands = params["commands"]
        return True

    async def _api_sendChatAction(self, params, files):
        return True

    async def _api_answerCallbackQuery(self, params, files):
        # As Telegram: a query is answered once, and only one it sent; the toast has at most 200 characters.
        query_id = params.get("callback_query_id")
        if query_id not in self._queries or query_id in self.query_answers:
            return _error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_CHARS:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        self.query_answers[query_id] = text
        return True

    async def _api_sendMessageDraft(self, params, files):
        if self.chats.get(params["chat_id"], {}).get("type") != "private":
            return _error(400, "Bad Request: drafts can be sent only to private chats")
        if not params.get("draft_id"):
            return _error(400, "Bad Request: draft_id must be non-zero")
        return self._check_text(params.get("text") or "") or True

    def _check_text(self, text: str) -> web.Response | None:
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_UTF16:
            return _error(400, "Bad Request: message is too long")
        return None

    def _bot_message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        chat = self.chats.get(chat_id) or self.chat(chat_id)
        message = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                   "from": self._bot_user(), **content}
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_sendMessage(self, params, files):
        text = params.get("text") or ""
        if (problem := self._check_text(text)) is not None:
            return problem
        if params.get("parse_mode"):
            return _error(400, "Bad Request: can't parse entities: the fake accepts plain text only")
        content: dict[str, Any] = {"text": text}
        if params.get("reply_markup"):
            content["reply_markup"] = params["reply_markup"]
        return self._bot_message(params["chat_id"], **content)

    async def _api_sendDocument(self, params, files):
        if "document" not in files:
            return _error(400, "Bad Request: there is no document in the request")
        name, _ = files["document"]
        return self._bot_message(params["chat_id"], document={"file_id": "doc1", "file_unique_id": "doc1u",
                                                              "file_name": name})

    def _existing(self, params) -> dict[str, Any] | web.Response:
        message = self.messages.get((params.get("chat_id"), params.get("message_id")))
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        return message

    async def _api_editMessageText(self, params, files):
        message = self._existing(params)
        if isinstance(message, web.Response):
            return message
        text = params.get("text") or ""
        if (problem := self._check_text(text)) is not None:
            return problem
        markup = params.get("reply_markup")
        if message.get("text") == text and message.get("reply_markup") == markup:
            return _error(400, "Bad Request: message is not modified: specified new message content and "
                               "reply markup are exactly the same as a current content and reply markup of the message")
        message["text"] = text
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return message

    async def _api_editMessageReplyMarkup(self, params, files):
        message = self._existing(params)
        if isinstance(message, web.Response):
            return message
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup:
            return _error(400, "Bad Request: message is not modified")
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message


def _error(status: int, description: str, **extra: Any) -> web.Response:
    """Telegram's error shape, with the HTTP status equal to error_code (PTB reads bodies only on non-2xx)."""
    return web.json_response({"ok": False, "error_code": status, "description": description, **extra}, status=status)


def _utf16_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def _decode(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Parameters from a query string, a JSON body, a form or a multipart body (files kept apart);
    form values are JSON-decoded as Telegram does (reply_markup arrives as a JSON string)."""
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query.items()}
    files: dict[str, tuple[str, bytes]] = {}
    if not request.can_read_body:
        return params, files
    if request.content_type == "application/json":
        body = await request.json()
        for key, value in body.items():
            params[key] = _decode(key, value) if isinstance(value, str) else value
        return params, files
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            data = await part.read()
            if part.filename:
                files[part.name] = (part.filename, bytes(data))
            else:
                params[part.name] = _decode(part.name, data.decode("utf-8"))
        return params, files
    form = await request.post()
    for key, value in form.items():
        params[key] = _decode(key, value) if isinstance(value, str) else value
    return params, files
