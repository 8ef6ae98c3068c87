"""Getting replies onto Telegram: one retry policy, per-chat locks and edit pacing, streaming, clean splitting."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from cachetools import TTLCache
from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.constants import ChatAction
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot.channels.telegram_config import TelegramConfig
from bot.core.messages import Reply, ReplyStream

log = logging.getLogger(__name__)
T = TypeVar("T")

# Telegram's retry_after is in whole seconds; waiting a little longer keeps the next try clear of it
# (python-telegram-bot's own limiter adds the same).
RETRY_AFTER_SLACK_S = 0.1
# Chats whose last edit ChatPacer remembers. An entry matters for edit_interval_s only and then
# expires; Telegram's ~30 messages/s overall keep the chats edited within one interval far below
# this, so the bound only stops a flood of chats from growing the map.
PACED_CHATS = 10_000

# Where a long text is best cut, best first: a paragraph, a line, a sentence, a word.
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?…])\s+"), re.compile(r"\s+"))


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The largest number of characters of `text` whose UTF-16 length is at most `limit`."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = 3900) -> list[str]:
    """Cut `text` into parts of at most `limit` UTF-16 units, at a paragraph, line, sentence or
    word break in the second half of each part where there is one; no part is empty."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        end = _fit(rest, limit)
        if end >= len(rest):
            parts.append(rest)
            break
        cut = end
        window = rest[:end]
        for pattern in _BREAKS:
            breaks = [m for m in pattern.finditer(window) if m.start() >= end // 2]
            if breaks:
                cut = breaks[-1].start()
                break
        part = rest[:cut].rstrip()
        if not part:  # only whitespace before the break: cut hard
            part, cut = rest[:end], end
        parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class ApiCaller:
    """The channel's one retry policy for Bot API calls (AIORateLimiter, see telegram.py, only
    paces them and retries nothing): a call is tried at most `max_retries + 1` times in all. A 429
    (RetryAfter) waits as long as Telegram asks, network errors, timeouts and 5xx back off
    exponentially, and "message is not modified" is success. A call that fails logs one warning
    when it is first retried and one more if it gives up, not a line per attempt."""

    def __init__(self, config: TelegramConfig) -> None:
        self.config = config

    async def __call__(self, method: str, call: Callable[[], Awaitable[T]]) -> T | None:
        attempts = self.config.max_retries + 1
        backoff = self.config.retry_backoff_s
        waited = 0.0
        for attempt in range(1, attempts + 1):
            try:
                return await call()
            except BadRequest as exc:  # a NetworkError subclass: caught before the retried ones
                if "not modified" in exc.message.lower():
                    return None
                raise
            except (RetryAfter, NetworkError) as exc:  # TimedOut and 5xx are NetworkErrors too
                if attempt == attempts:
                    if attempts > 1:
                        log.warning("telegram call gave up method=%s attempts=%d waited_s=%.1f error=%s",
                                    method, attempt, waited, _describe(exc))
                    raise
                if isinstance(exc, RetryAfter):
                    wait = _seconds(exc.retry_after) + RETRY_AFTER_SLACK_S
                else:
                    wait, backoff = backoff, min(backoff * 2, self.config.retry_backoff_max_s)
                log.log(logging.WARNING if attempt == 1 else logging.DEBUG,
                        "telegram call failed, retrying method=%s attempt=%d of %d error=%s retry_in_s=%.2f",
                        method, attempt, attempts, _describe(exc), wait)
                await asyncio.sleep(wait)
                waited += wait
        raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: TelegramError) -> str:
    """The error's kind and Telegram's words, on one line (the token is never in them)."""
    return f"{type(exc).__name__}({' '.join(str(exc).split())[:200]})"


class ChatLocks:
    """One asyncio.Lock per chat, kept exactly as long as someone holds it or waits for it. The map
    holds its locks weakly: a holder and its waiters reference their lock, so a lock in use cannot
    go and be replaced by a second one beside it (two turns of a chat at once), and an idle chat's
    lock goes by itself, so the map is bounded by the chats with something in flight. An LRU bound
    would evict by recency instead of use: a lock held through a long generation could be dropped."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, chat_id: int) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        return len(self._locks)


class ChatPacer:
    """At most one edit (or draft) per `interval` seconds in each chat, shared by all its replies."""

    def __init__(self, interval: float, max_chats: int = PACED_CHATS, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        # A chat's last edit, forgotten once `interval` has passed (then the chat is ready anyway).
        self._last: TTLCache[int, float] = TTLCache(maxsize=max_chats, ttl=interval, timer=clock)
        self._locks = ChatLocks()

    def __len__(self) -> int:
        """The chats whose last edit is still remembered."""
        return len(self._last)

    def ready_at(self, chat_id: int) -> float:
        return self._last.get(chat_id, float("-inf")) + self.interval

    def mark(self, chat_id: int) -> None:
        self._last[chat_id] = self._clock()

    async def edit(self, chat_id: int, call: Callable[[], Awaitable[T]]) -> T:
        async with self._locks(chat_id):
            wait = self.ready_at(chat_id) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self.mark(chat_id)
            return await call()


class Delivery:
    """Sends one turn's reply to a chat: plain text (never parse_mode, so no formatting can fail),
    split at the length limit, streamed as drafts (private chats) or a paced placeholder edit."""

    def __init__(self, bot: Bot, config: TelegramConfig) -> None:
        self.bot = bot
        self.config = config
        self.call = ApiCaller(config)
        self.pacer = ChatPacer(config.edit_interval_s)
        self.drafts = config.use_drafts

    # --- single calls ----------------------------------------------------------------

    async def send(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None,
                   reply_to: int | None = None) -> Message | None:
        return await self.call("sendMessage", lambda: self.bot.send_message(
            chat_id, text, reply_markup=markup, reply_to_message_id=reply_to,
            allow_sending_without_reply=True if reply_to else None,
        ))

    async def edit_text(self, chat_id: int, message_id: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> Any:
        return await self.call("editMessageText", lambda: self.pacer.edit(chat_id, lambda: self.bot.edit_message_text(
            text, chat_id=chat_id, message_id=message_id, reply_markup=markup,
        )))

    async def edit_markup(self, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None) -> Any:
        return await self.call("editMessageReplyMarkup", lambda: self.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=markup,
        ))

    async def draft(self, chat_id: int, draft_id: int, text: str) -> Any:
        return await self.call("sendMessageDraft", lambda: self.pacer.edit(
            chat_id, lambda: self.bot.send_message_draft(chat_id, draft_id, text),
        ))

    async def keep_typing(self, chat_id: int) -> None:
        """sendChatAction(typing) now and every typing_interval_s until cancelled; failures are only logged."""
        while True:
            try:
                await self.call("sendChatAction", lambda: self.bot.send_chat_action(chat_id, ChatAction.TYPING))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a missing typing indicator is not worth a failed turn
                log.info("typing indicator failed chat=%s error=%s", chat_id, type(exc).__name__)
            await asyncio.sleep(self.config.typing_interval_s)

    # --- a whole reply -----------------------------------------------------------------

    async def deliver(self, chat_id: int, private: bool, stream: ReplyStream,
                      markup_for: Callable[[Reply], Awaitable[InlineKeyboardMarkup | None]],
                      reply_to: int | None = None) -> tuple[Reply, Message | None]:
        """Stream the turn's text, then send the final reply with its keyboard under the last part.
        Returns the Reply and the Telegram message that carries the keyboard."""
        typing = asyncio.create_task(self.keep_typing(chat_id))
        streamer = _Streamer(self, chat_id, private and self.drafts, reply_to)
        try:
            await streamer.follow(stream)
            reply = await stream.reply()
        finally:
            typing.cancel()
            await asyncio.gather(typing, return_exceptions=True)
        markup = await markup_for(reply)
        last = await streamer.finish(reply.text, markup)
        return reply, last


class _Streamer:
    """One reply in the making: the text so far, the parts already sent, and the preview shown."""

    def __init__(self, delivery: Delivery, chat_id: int, drafts: bool, reply_to: int | None) -> None:
        self.d = delivery
        self.chat_id = chat_id
        self.drafts = drafts
        self.reply_to = reply_to
        self.text = ""
        self.committed = 0        # characters of `text` already sent as finished messages
        self.shown = ""           # the preview on screen
        self.placeholder: Message | None = None
        self.draft_id = random.randint(1, 2**31 - 1)

    async def follow(self, stream: ReplyStream) -> None:
        config = self.d.config
        started = time.monotonic()
        pieces = stream.__aiter__()
        pending: asyncio.Future[str] = asyncio.ensure_future(anext(pieces))
        try:
            while True:
                timeout = None
                if self.text[self.committed:].strip() and self.text[self.committed:] != self.shown:
                    due = max(started + config.stream_after_s, self.d.pacer.ready_at(self.chat_id))
                    timeout = max(0.0, due - time.monotonic())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if pending in done:
                    try:
                        self.text += pending.result()
                    except StopAsyncIteration:
                        return
                    pending = asyncio.ensure_future(anext(pieces))
                    continue
                await self._preview()
        finally:
            if not pending.done():
                pending.cancel()

    async def _preview(self) -> None:
        limit = self.d.config.split_at
        current = self.text[self.committed:]
        while utf16_len(current.strip()) > limit:
            part = split_text(current, limit)[0]
            await self._commit(part)
            # Skip past the part and the whitespace after it in the streamed text.
            consumed = current.find(part) + len(part)
            while consumed < len(current) and current[consumed].isspace():
                consumed += 1
            self.committed += consumed
            current = self.text[self.committed:]
        if not current.strip() or current == self.shown:
            return
        if self.drafts:
            await self.d.draft(self.chat_id, self.draft_id, current)
        elif self.placeholder is None:
            self.placeholder = await self.d.send(self.chat_id, current, reply_to=self.reply_to)
            self.d.pacer.mark(self.chat_id)
        else:
            await self.d.edit_text(self.chat_id, self.placeholder.message_id, current)
        self.shown = current

    async def _commit(self, part: str) -> None:
        """A finished part of a long reply: it becomes a message of its own."""
        if self.placeholder is not None:
            await self.d.edit_text(self.chat_id, self.placeholder.message_id, part)
            self.placeholder = None
        else:
            await self.d.send(self.chat_id, part, reply_to=self.reply_to)
        self.shown = ""

    async def finish(self, final_text: str, markup: InlineKeyboardMarkup | None) -> Message | None:
        sent = self.text[:self.committed].strip()
        rest = final_text
        if sent:
            rest = final_text[len(sent):] if final_text.startswith(sent) else final_text
        parts = split_text(rest, self.d.config.split_at) or ([] if sent else ["…"])
        last: Message | None = None
        for index, part in enumerate(parts):
            keyboard = markup if index == len(parts) - 1 else None
            if index == 0 and self.placeholder is not None:
                result = await self.d.edit_text(self.chat_id, self.placeholder.message_id, part, keyboard)
                last = result if isinstance(result, Message) else self.placeholder
            else:
                last = await self.d.send(self.chat_id, part, keyboard, reply_to=self.reply_to)
        return last
