"""TelegramChannel: python-telegram-bot v22 as a thin adapter over handle_turn, by long polling or webhook."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cachetools import LRUCache
from telegram import (
    BotCommand, CallbackQuery, Chat, InlineKeyboardMarkup, InputFile, Message, Update, User,
)
from telegram.constants import ChatType, MessageEntityType
from telegram.error import InvalidToken, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot import redaction
from bot.channels import telegram_keyboards as kb
from bot.channels.services import Services
from bot.channels.telegram_config import TelegramConfig
from bot.channels.telegram_delivery import ChatLocks, Delivery
from bot.channels.telegram_texts import COMMAND_DESCRIPTIONS, CONTENT_KINDS, commands, language_of, say, split_command
from bot.core.errors import BotError, ConfigError, InputError, NotFound
from bot.core.messages import Incoming, Reply, ReplyStream
from bot.storage.channel_state import ChannelStateRepo
from bot.storage.leader import Leadership

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
# The story skill, which story buttons address, and the metadata key of a button's turn (skills/story.py BUTTON).
STORY_SKILL, STORY_BUTTON = "story", "story_button"
# The leader election of polling: its job name, and its lock file in the data folder (SQLite).
POLL_JOB = "telegram-poll"
POLL_LOCK_FILE = "telegram-poll.lock"
# python-telegram-bot's AIORateLimiter logs here (telegram/ext/_aioratelimiter.py).
RATE_LIMITER_LOGGER = "telegram.ext.AIORateLimiter"
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# The update being handled, so a turn started for it can tell its webhook POST that it is taken.
_UPDATE_ID: ContextVar[int | None] = ContextVar("telegram_update_id", default=None)
# Chats whose latest story buttons are remembered, least recently used first out. In a chat
# forgotten, the buttons under the previous passage stay on screen when the next one comes; a tap
# on them is answered "moved on" (decided in SQL) and takes them away: nothing that matters.
STORY_MESSAGE_CHATS = 10_000


class TelegramChannel:
    """Telegram updates in, `handle_turn` streams out. State lives in SQL (conversations, feedback,
    dialog state, which button was pressed); the only memory here is which message shows the latest
    story buttons, so that the previous ones can be taken away (whether a button may act is decided
    in SQL, not by this), for the most recent STORY_MESSAGE_CHATS chats."""

    def __init__(self, services: Services, config: TelegramConfig, token: str,
                 webhook_secret: str | None = None) -> None:
        if config.mode == "webhook" and not (webhook_secret and _SECRET_TOKEN.match(webhook_secret)):
            raise ConfigError("Telegram webhook mode needs TANDEM_TELEGRAM_WEBHOOK_SECRET: 1-256 characters "
                              "of A-Z, a-z, 0-9, _ and -")
        self.services = services
        self.config = config
        self._token = token
        self._secret = webhook_secret
        self.state = ChannelStateRepo(services.conversations.db)
        self.application: Application | None = None
        self.delivery: Delivery | None = None
        self._chat_locks = ChatLocks()
        self._story_messages: LRUCache[int, tuple[int, InlineKeyboardMarkup | None]] = LRUCache(STORY_MESSAGE_CHATS)
        self._leadership: Leadership | None = None
        self._leading: asyncio.Task | None = None
        # Webhook mode: update id -> done once the update is taken (see `webhook`), and the tasks
        # that wait for a turn's user message to be stored.
        self._taking: dict[int, asyncio.Future[None]] = {}
        self._watchers: set[asyncio.Task] = set()

    # --- lifecycle ---------------------------------------------------------------------

    def _build(self) -> Application:
        cfg = self.config
        timeout = cfg.request_timeout_s
        # The limiter paces calls and retries none (max_retries=0): Delivery's ApiCaller is the one
        # retry policy, for 429s and network errors alike. Both retrying made a persistent 429
        # (max_retries + 1) ** 2 calls, 36 by default, instead of max_retries + 1.
        builder = (
            ApplicationBuilder().token(self._token).base_url(cfg.api_base_url)
            .rate_limiter(AIORateLimiter(overall_max_rate=cfg.overall_per_s, overall_time_period=1,
                                         group_max_rate=cfg.group_per_min, group_time_period=60,
                                         max_retries=0))
            .concurrent_updates(True)
            .connect_timeout(timeout).read_timeout(timeout).write_timeout(timeout).pool_timeout(timeout)
            .get_updates_connect_timeout(timeout).get_updates_read_timeout(timeout)
            .get_updates_pool_timeout(timeout)
        )
        if cfg.mode == "webhook":
            builder = builder.updater(None)
        return builder.build()

    async def start(self) -> None:
        # Opt in to PTB's coming timedelta durations (RetryAfter.retry_after), so a 429 does not warn.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        self._quiet_request_logs()
        app = self._build()
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        try:
            await app.initialize()  # getMe: a wrong token stops start-up here
        except InvalidToken as exc:
            raise ConfigError("Telegram refused the bot token (TANDEM_TELEGRAM_TOKEN)") from exc
        except TelegramError as exc:
            raise BotError(f"cannot reach the Telegram Bot API at {self.config.api_base_url}: {exc}") from exc
        self.application = app
        self.delivery = Delivery(app.bot, self.config)
        # The menu in English for every client, and in each language for clients set to it.
        for language in (None, *COMMAND_DESCRIPTIONS):
            menu = [BotCommand(name, description) for name, description in commands(language)]
            await self.delivery.call("setMyCommands", lambda menu=menu, language=language:
                                     app.bot.set_my_commands(menu, language_code=language))
        await app.start()
        if self.config.mode == "polling":
            # Telegram hands updates to one getUpdates caller at a time: of the processes sharing
            # this database, the leader polls, and another takes over when it goes.
            interval = self.config.leader_interval_s
            self._leadership = Leadership(self.services.conversations.db, POLL_JOB,
                                          Path(self.services.settings.data_dir) / POLL_LOCK_FILE,
                                          retry_s=interval, check_s=interval)
            if await self._first_try_to_lead():  # a lone process polls before start() returns
                try:
                    await self._start_polling()
                except BaseException:
                    await self._leadership.close()
                    raise
            self._leading = asyncio.create_task(self._leadership.lead(self._start_polling, self._stop_polling))
        else:
            await self.delivery.call("setWebhook", lambda: app.bot.set_webhook(
                self.config.webhook_url, secret_token=self._secret, allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=self.config.drop_pending_updates,
                max_connections=self.config.webhook_max_connections,
            ))
        log.info("telegram channel started bot=@%s mode=%s", app.bot.username, self.config.mode)

    async def _first_try_to_lead(self) -> bool:
        assert self._leadership is not None
        try:
            return await self._leadership.try_acquire()
        except Exception:  # noqa: BLE001 - the leader loop logs it and tries again
            return False

    @property
    def polling(self) -> bool:
        """Whether this process is the one polling getUpdates now."""
        app = self.application
        return app is not None and app.updater is not None and app.updater.running

    async def _start_polling(self) -> None:
        app = self.application
        assert app is not None and app.updater is not None
        if app.updater.running:
            return
        await app.updater.start_polling(
            timeout=timedelta(seconds=self.config.poll_timeout_s), allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=self.config.drop_pending_updates, error_callback=self._polling_error,
        )
        log.info("telegram polling started (this process leads)")

    async def _stop_polling(self) -> None:
        # Updates already fetched are still handled: only the updater stops, not the application.
        app = self.application
        if app is not None and app.updater is not None and app.updater.running:
            await app.updater.stop()
            log.info("telegram polling stopped")

    async def stop(self) -> None:
        for taken in self._taking.values():  # a webhook POST still waiting is answered now
            if not taken.done():
                taken.set_result(None)
        for watcher in list(self._watchers):
            watcher.cancel()
        leading, self._leading = self._leading, None
        if leading is not None:
            leading.cancel()  # stops polling and hands leadership on
            await asyncio.gather(leading, return_exceptions=True)
        app, self.application = self.application, None
        if app is not None:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
            log.info("telegram channel stopped")

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """For aiohttp's cleanup_ctx: the channel runs as long as the web server does."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def _quiet_request_logs(self) -> None:
        """httpx logs every request URL at INFO, and the URL holds the token: the token is masked
        in every record (bot/redaction.py), and the per-request lines are kept out of INFO.
        AIORateLimiter with max_retries=0 logs every 429 as an ERROR with a traceback ("after
        maximum of 0 retries"), although ApiCaller retries it and logs it itself: its records
        (that one and a per-retry line it never reaches) are kept out below CRITICAL."""
        redaction.protect([self._token])  # the composition root did so too; a channel built alone is covered
        for name, level in (("httpx", logging.WARNING), (RATE_LIMITER_LOGGER, logging.CRITICAL)):
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(level)

    def _polling_error(self, exc: TelegramError) -> None:
        log.warning("telegram polling error=%s: %s", type(exc).__name__, exc)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update failed update_id=%s error=%r", update_id, context.error,
                  exc_info=context.error)

    # --- webhook -------------------------------------------------------------------------

    def secret_ok(self, given: str | None) -> bool:
        """Constant-time check of X-Telegram-Bot-Api-Secret-Token."""
        if not self._secret or given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._secret.encode("utf-8"))

    async def webhook(self, request: web.Request) -> web.Response:
        if not self.secret_ok(request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
            log.warning("telegram webhook refused: wrong secret token remote=%s", request.remote)
            raise web.HTTPForbidden(reason="wrong secret token")
        app = self.application
        if app is None or not app.running:
            raise web.HTTPServiceUnavailable(reason="the Telegram channel is not running")
        try:
            data = json.loads((await request.read()).decode("utf-8"))  # UTF-8 whatever charset the header names
            if not isinstance(data, dict):
                raise TypeError(type(data).__name__)
            update = Update.de_json(data, app.bot)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            # de_json breaks in all these ways on a body of the wrong shape (a list, a field of the wrong type).
            raise web.HTTPBadRequest(reason="not a Telegram update") from None
        if update is None:
            raise web.HTTPBadRequest(reason="not a Telegram update")
        # Answered once the update is taken: its turn's user message stored (the conversation's
        # ticket, docs/architecture.md "A turn"), or its handling done when it makes no turn.
        # Telegram sends the next update (max_connections=1) only then, to whichever worker, so
        # a chat's messages reach the database in the order Telegram sent them.
        update_id = update.update_id
        taken = self._taking.get(update_id)
        if taken is None or taken.done():
            taken = self._taking[update_id] = asyncio.get_running_loop().create_future()
        try:
            await app.update_queue.put(update)
            done, _ = await asyncio.wait({taken}, timeout=self.config.webhook_take_timeout_s)
            if not done:
                log.warning("telegram webhook answered before the update was taken update_id=%s "
                            "waited_s=%s", update_id, self.config.webhook_take_timeout_s)
        finally:
            if self._taking.get(update_id) is taken:
                del self._taking[update_id]
        return web.json_response({"ok": True})

    def _taken(self, update_id: int) -> None:
        taken = self._taking.get(update_id)
        if taken is not None and not taken.done():
            taken.set_result(None)

    def _taken_when_stored(self, stream: ReplyStream) -> None:
        """The update being handled is taken once the turn's user message is stored; the turn
        goes on meanwhile (a task waits for it, not the turn)."""
        update_id = _UPDATE_ID.get()
        taken = self._taking.get(update_id) if update_id is not None else None
        if taken is None or taken.done():
            return  # polling, or the webhook POST is answered already

        def stored(watcher: asyncio.Task) -> None:
            self._watchers.discard(watcher)
            if not watcher.cancelled():
                watcher.exception()  # retrieved: user_message_id() does not fail, a broken stream must not warn
            self._taken(update_id)

        watcher = asyncio.ensure_future(stream.user_message_id())
        self._watchers.add(watcher)
        watcher.add_done_callback(stored)

    # --- updates: the whole policy -------------------------------------------------------

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        token = _UPDATE_ID.set(update.update_id)
        try:
            await self._handle(update)
        finally:
            _UPDATE_ID.reset(token)
            self._taken(update.update_id)  # handled without a turn, or the turn's message is stored

    async def _handle(self, update: Update) -> None:
        if update.callback_query is not None:
            await self._on_click(update.callback_query)
            return
        if update.edited_message is not None:
            edited = update.edited_message
            if edited.chat.type == ChatType.PRIVATE:
                await self._tell(edited.chat.id, say("edited", language_of(edited.from_user)))
            return
        message = update.message
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        private = message.chat.type == ChatType.PRIVATE
        text = message.text if private else self._addressed_text(message)
        if text is None:
            kind = next((k for k in CONTENT_KINDS if getattr(message, k, None)), None)
            if private and kind is not None:
                names = CONTENT_KINDS[kind]
                language = language_of(message.from_user)
                await self._tell(message.chat.id, say("not_text", language, kind=names[language == "ru"]))
            return
        command, _, argument = split_command(text)
        if command == "language":
            await self._language_command(message, argument)
        elif command == "deletemydata":
            await self._delete_command(message)
        else:
            if command is not None:  # "/help@TandemBot" reads as "/help"
                text = f"/{command} {argument}".strip()
            await self._turn(message.chat, message.from_user, text,
                             reply_to=None if private else message.message_id,
                             client_message_id=f"tg:{message.chat.id}:{message.message_id}")

    def _addressed_text(self, message: Message) -> str | None:
        """In a group, the text of a command or mention for this bot (mention removed), else None."""
        text = message.text
        if not text:
            return None
        username = (self.application.bot.username or "").lower() if self.application else ""
        command, addressee, _ = split_command(text)
        if command is not None:
            return text if addressee is None or addressee.lower() == username else None
        for entity in message.entities:
            if entity.type == MessageEntityType.MENTION:
                mention = message.parse_entity(entity)
                if mention.lower() == f"@{username}":
                    return (text.replace(mention, " ", 1)).strip() or "hi"
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and self.application is not None \
                and replied.from_user.id == self.application.bot.id:
            return text
        return None

    # --- turns -----------------------------------------------------------------------------

    def _subject(self, chat: Chat, user: User | None) -> tuple[str, str | None]:
        """Who a chat's conversation belongs to: the person in a private chat, the group otherwise."""
        if chat.type == ChatType.PRIVATE:
            return str(user.id if user else chat.id), (user.full_name if user else None)
        return f"chat:{chat.id}", chat.title

    async def _user_id(self, chat: Chat, user: User | None) -> int:
        external_id, name = self._subject(chat, user)
        return await self.services.conversations.user_for(CHANNEL, external_id, name)

    async def _turn(self, chat: Chat, user: User | None, text: str, *, reply_to: int | None = None,
                    conversation_id: str | None = None, client_message_id: str | None = None,
                    skill: str | None = None, metadata: dict[str, Any] | None = None) -> Reply | None:
        # Started before any await, so a chat's turns reach the dispatcher in the order they came.
        stream = self._start_turn(chat, user, text, conversation_id=conversation_id,
                                  client_message_id=client_message_id, skill=skill, metadata=metadata)
        return await self._deliver(chat, stream, reply_to)

    def _start_turn(self, chat: Chat, user: User | None, text: str, *, conversation_id: str | None = None,
                    client_message_id: str | None = None, skill: str | None = None,
                    metadata: dict[str, Any] | None = None) -> ReplyStream:
        external_id, name = self._subject(chat, user)
        # A message's chat and message id name it for good: an update delivered twice (a webhook
        # retried, a poller restarted) is answered from storage the second time, not run again.
        incoming = Incoming(CHANNEL, external_id, text, conversation_id=conversation_id, user_name=name,
                            language=language_of(user), client_message_id=client_message_id, skill=skill,
                            metadata={**(metadata or {}), "chat_id": chat.id, "chat_type": chat.type})
        stream = self.services.handle_turn(incoming)
        self._taken_when_stored(stream)
        return stream

    async def _deliver(self, chat: Chat, stream: ReplyStream, reply_to: int | None = None) -> Reply | None:
        """Show the turn's reply in the chat as it is written; None when Telegram did not take it."""
        assert self.delivery is not None
        async with self._chat_locks(chat.id):
            try:
                reply, last = await self.delivery.deliver(chat.id, chat.type == ChatType.PRIVATE, stream,
                                                          self._markup_for, reply_to)
            except TelegramError as exc:
                # The reply is stored all the same; the user sees it in /export and the next turns.
                log.error("telegram reply not delivered chat=%s conversation=%s error=%r", chat.id,
                          getattr(stream, "conversation_id", None), exc)
                return None
            await self._after_reply(chat.id, reply, last)
        return reply

    async def _markup_for(self, reply: Reply) -> InlineKeyboardMarkup | None:
        return kb.reply_markup(reply, offer_rating=self._offers_rating(reply))

    @staticmethod
    def _offers_rating(reply: Reply) -> bool:
        return bool(reply.data.get("rating_request") or reply.data.get("conversation_end"))

    async def _after_reply(self, chat_id: int, reply: Reply, last: Message | None) -> None:
        """Store the feedback offers the user was shown, keep story buttons on the latest passage only,
        and send an export file when the skill made one."""
        if last is None:
            return
        if isinstance(reply.data.get("story"), Mapping):
            # Recorded before any await, so a click on the new buttons is never taken for a stale one.
            previous = self._story_messages.get(chat_id)
            self._story_messages[chat_id] = (last.message_id, last.reply_markup)
            if previous is not None and previous[0] != last.message_id:
                await self._quietly(self.delivery.edit_markup(chat_id, previous[0], kb.without(previous[1], {kb.STORY})))
        feedback = self.services.feedback
        if reply.message_id is not None:
            await feedback.add_offer(reply.conversation_id, "thumb", CHANNEL)
        if reply.data.get("conversation_end") and not reply.data.get("rating_request"):
            await feedback.add_offer(reply.conversation_id, "rating", CHANNEL)  # the skill stores its own
        export = reply.data.get("export")
        if isinstance(export, Mapping) and export.get("content") is not None:
            await self._send_file(chat_id, str(export.get("filename") or "story.txt"), export["content"])

    async def _send_file(self, chat_id: int, filename: str, content: str | bytes) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        assert self.delivery is not None
        await self.delivery.call("sendDocument", lambda: self.delivery.bot.send_document(
            chat_id, InputFile(data, filename=filename)))

    async def _tell(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> Message | None:
        assert self.delivery is not None
        return await self.delivery.send(chat_id, text, markup)

    async def _quietly(self, call: Any) -> Any:
        try:
            return await call
        except TelegramError as exc:
            log.info("telegram call failed, going on error=%r", exc)
            return None

    # --- commands the channel answers itself -------------------------------------------------

    async def _language_command(self, message: Message, argument: str) -> None:
        code = argument.lower()[:2]
        if code not in kb.LANGUAGE_NAMES:
            await self._tell(message.chat.id, say("language_ask", language_of(message.from_user)), kb.language_markup())
            return
        await self._set_language(message.chat, message.from_user, code,
                                 client_message_id=f"tg:{message.chat.id}:{message.message_id}")

    async def _set_language(self, chat: Chat, user: User | None, code: str, *,
                            client_message_id: str | None = None) -> None:
        # A turn of the language skill, not a write of the channel's own: it is ordered with the
        # conversation's other turns, so a turn in flight cannot overwrite the choice.
        await self._turn(chat, user, f"/language {code}", skill="language", metadata={"language": code},
                         client_message_id=client_message_id)

    async def _delete_command(self, message: Message) -> None:
        language = language_of(message.from_user)
        if message.chat.type != ChatType.PRIVATE:
            await self._tell(message.chat.id, say("private_only", language))
            return
        await self._tell(message.chat.id, say("delete_ask", language), kb.delete_markup(language))

    # --- button clicks -------------------------------------------------------------------------

    async def _on_click(self, query: CallbackQuery) -> None:
        language = language_of(query.from_user)
        message = query.message if isinstance(query.message, Message) else None
        try:
            callback = kb.decode(query.data)
        except kb.CallbackDataError:
            await self._answer(query, say("stale", language))
            return
        if message is None or callback.kind == kb.NOOP:
            await self._answer(query, None if message else say("stale", language))
            return
        handlers = {
            kb.THUMB: self._click_thumb, kb.RATE: self._click_rate, kb.SUGGEST: self._click_suggestion,
            kb.STORY: self._click_story, kb.LANGUAGE: self._click_language, kb.DELETE: self._click_delete,
        }
        try:
            await handlers[callback.kind](query, message, callback, language)
        except (ValueError, IndexError):
            await self._answer(query, say("stale", language))

    async def _answer(self, query: CallbackQuery, text: str | None) -> None:
        assert self.delivery is not None
        await self._quietly(self.delivery.call("answerCallbackQuery", lambda: query.answer(text)))

    async def _show_choice(self, message: Message, kinds: set[str], label: str | None) -> None:
        markup = kb.show_choice(message.reply_markup, kinds, label) if label else kb.without(message.reply_markup, kinds)
        latest = self._story_messages.get(message.chat.id)
        if latest is not None and latest[0] == message.message_id:
            self._story_messages[message.chat.id] = (message.message_id, markup)  # what it shows now
        await self._quietly(self.delivery.edit_markup(message.chat.id, message.message_id, markup))

    async def _click_thumb(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                           language: str | None) -> None:
        message_id, up = int(callback.args[0]), callback.args[1] == "1"
        user_id = await self._user_id(message.chat, query.from_user)
        try:
            await self.services.feedback.add_thumb(message_id, user_id, up, CHANNEL)
        except (NotFound, InputError):
            await self._answer(query, say("not_yours", language))
            return
        conversation_id = await self.state.conversation_of_message(message_id)
        if conversation_id is not None:
            await self.state.answer_offer(conversation_id, "thumb")
        await self._answer(query, say("thanks", language))
        await self._show_choice(message, {kb.THUMB}, ("👍" if up else "👎") + " ✓")

    async def _click_rate(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                          language: str | None) -> None:
        conversation_id, value = callback.args[0], int(callback.args[1])
        if not 1 <= value <= 5:
            raise ValueError(value)
        user_id = await self._user_id(message.chat, query.from_user)
        if await self.services.conversations.owner_of(conversation_id) != user_id:
            await self._answer(query, say("not_yours", language))
            return
        await self._answer(query, say("thanks", language))
        await self._show_choice(message, {kb.RATE, kb.SUGGEST}, f"{kb.STARS} {value}/5 ✓")
        # A turn of the feedback skill: it stores the rating and asks for the comment that may follow,
        # in order with the conversation's other turns (the channel writes no dialog state itself).
        await self._turn(message.chat, query.from_user, str(value), conversation_id=conversation_id,
                         skill="feedback", metadata={"rating": value}, client_message_id=f"cb:{query.id}")

    async def _click_suggestion(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                                language: str | None) -> None:
        text = kb.label_of(message.reply_markup, query.data)
        if not text:
            await self._answer(query, say("stale", language))
            return
        await self._answer(query, None)
        await self._show_choice(message, {kb.SUGGEST}, None)
        await self._turn(message.chat, query.from_user, text)

    async def _click_story(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                           language: str | None) -> None:
        """A story button acts once. Its keyboard's message names its turn for good
        (`tg:<chat>:<message>:story`), so a second tap, on that button or another of the same keyboard,
        is the same turn: turned away here when it is stored already (a tap after the first was taken,
        a tap after a restart, in any worker), or recognised as a duplicate by the dispatcher when
        two taps come at once. A button of a story that has moved on since it was shown does nothing."""
        # Checked before the click is answered: a click can be answered once, and a broken one says so.
        button = kb.story_button(callback)
        stories = self.services.stories
        if stories is None:
            raise ValueError("no story skill")
        user_id = await self._user_id(message.chat, query.from_user)
        client_id = f"tg:{message.chat.id}:{message.message_id}:story"
        if await self.state.has_user_message(user_id, client_id):
            # Asked before the button is looked for: the keyboard may show the choice already. The
            # keyboard is left as it is: the tap that acted shows its choice there.
            await self._answer(query, say("done", language))
            return
        label = kb.label_of(message.reply_markup, query.data)
        if label is None:
            raise ValueError("not a button of this message")
        try:
            view = await stories.view(user_id, button.story_id)
        except NotFound:  # deleted since, or someone else's (the two look alike)
            await self._answer(query, say("stale", language))
            await self._spend(message)
            return
        # The moment as skills/story.py `moment` reads it: the head passage and the last candidate waiting.
        now = (view.story.head_id, view.pending[-1].id if view.pending else None)
        if button.action != "open" and now != (button.head_id, button.last_candidate_id):
            await self._answer(query, say("moved_on", language))
            await self._spend(message)
            return
        stream = self._start_turn(message.chat, query.from_user, button.command, skill=STORY_SKILL,
                                  metadata={STORY_BUTTON: button.metadata()}, client_message_id=client_id)
        await stream.user_message_id()
        if getattr(stream, "duplicate", False):
            # Another tap of this keyboard came first: that one acts and is shown.
            await self._answer(query, say("done", language))
            reply = await stream.reply()
            if reply.duplicate:
                return
            # The first tap's turn died with its process, and this one answered it: show that.
            await self._deliver(message.chat, stream)
            return
        await self._answer(query, None)
        await self._show_choice(message, {kb.STORY}, f"✓ {label}")
        await self._deliver(message.chat, stream)

    async def _spend(self, message: Message) -> None:
        """Take the story buttons off a message whose buttons can do nothing any more."""
        if kb.acts(message.reply_markup, {kb.STORY}):
            await self._show_choice(message, {kb.STORY}, None)

    async def _click_language(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                              language: str | None) -> None:
        code = callback.args[0]
        if code not in kb.LANGUAGE_NAMES:
            raise ValueError(code)
        await self._answer(query, None)
        await self._show_choice(message, {kb.LANGUAGE}, f"{kb.LANGUAGE_NAMES[code]} ✓")
        await self._set_language(message.chat, query.from_user, code, client_message_id=f"cb:{query.id}")

    async def _click_delete(self, query: CallbackQuery, message: Message, callback: kb.Callback,
                            language: str | None) -> None:
        if message.chat.type != ChatType.PRIVATE or query.from_user.id != message.chat.id:
            await self._answer(query, say("not_yours", language))
            return
        if callback.args[:1] not in (("yes",), ("no",)):
            raise ValueError(callback.args)  # before answering: a click is answered once
        await self._answer(query, None)
        if callback.args[0] == "yes":
            user_id = await self._user_id(message.chat, query.from_user)
            await self.services.conversations.delete_user(user_id)
            self._story_messages.pop(message.chat.id, None)
            log.info("telegram user data deleted user=%s", user_id)
            reply = say("deleted", language)
        else:
            reply = say("kept", language)
        assert self.delivery is not None
        await self._quietly(self.delivery.call("editMessageText", lambda: self.delivery.bot.edit_message_text(
            reply, chat_id=message.chat.id, message_id=message.message_id, reply_markup=None)))


# --- wiring into the aiohttp app -------------------------------------------------------------

TELEGRAM: web.AppKey[TelegramChannel] = web.AppKey("telegram", TelegramChannel)


async def _webhook_route(request: web.Request) -> web.Response:
    return await request.app[TELEGRAM].webhook(request)


def install(app: web.Application, services: Services, config: TelegramConfig | None = None) -> TelegramChannel | None:
    """Add the Telegram channel to the web app when a token is set: it starts and stops with the
    server (cleanup_ctx), and in webhook mode its route is served by the same server."""
    settings = services.settings
    if settings.telegram_token is None:
        return None
    config = config or getattr(settings, "telegram", None) or TelegramConfig()
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else None
    channel = TelegramChannel(services, config, settings.telegram_token.get_secret_value(), secret)
    app[TELEGRAM] = channel
    if config.mode == "webhook":
        app.router.add_post(config.webhook_path, _webhook_route)
    app.cleanup_ctx.append(channel.lifecycle)
    return channel
