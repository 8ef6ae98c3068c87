"""The story endpoints of the HTTP API (for the web widget, Telegram buttons and other clients),
with Server-Sent Events streaming of passages as they are generated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.channels.http_api import BUSY_RETRY_S, authenticated_user, json_error, read_json
from bot.channels.ratelimit import spend_turn_budget
from bot.channels.services import SERVICES
from bot.channels.sse import SseStream
from bot.core.errors import BotError, InputError, ModelUnavailable, NotFound, StorageError, refusal
from bot.core.text import clean_text
from bot.dispatch.admission import Busy, user_key
from bot.story.service import StoryService
from bot.story.tree import CandidateDone, GenerationDone, PassageDelta, passage_json

log = logging.getLogger(__name__)
_USER: web.RequestKey[int] = web.RequestKey("tandem_user_id", int)
# The language of the request's answers, once known (see `_language`).
_LANGUAGE: web.RequestKey[str] = web.RequestKey("tandem_story_language", str)
LANGUAGES = ("en", "ru")
# The error messages, in the request's language (InputError's own come from the error).
BUSY_MESSAGE = {
    "en": "I'm getting a lot of requests right now, so I didn't take that one. Please send it again shortly.",
    "ru": "Мне сейчас приходит очень много запросов, так что этот я не принял. Отправь его ещё раз чуть позже.",
}
TOO_SLOW = {"en": "That took too long, so I stopped; what was written so far is kept, marked incomplete.",
            "ru": "Это заняло слишком много времени, так что я остановился; написанное сохранено как незаконченное."}
NOT_SAVED = {"en": "I can't save the story right now, so that passage was not kept. Please try again in a moment.",
             "ru": "Сейчас я не могу сохранить историю, так что этот отрывок не сохранён. Попробуй ещё раз чуть позже."}
NO_SUCH_STORY = {"en": "no such story", "ru": "такой истории нет"}
NO_MODEL = {"en": "The language model is not available right now.", "ru": "Языковая модель сейчас недоступна."}
CONFIRM_DELETE = {"en": 'Deleting "{title}" cannot be undone; repeat with ?confirm=true.',
                  "ru": "Удаление «{title}» нельзя отменить; повтори запрос с ?confirm=true."}
# What the generation task hands the response besides story events.
_END, _TIMEOUT, _NOT_STORED = object(), object(), object()


@web.middleware
async def story_errors(request: web.Request, handler) -> web.StreamResponse:
    """Service errors as JSON: bad input 400 (the message is meant for the user), unknown or
    foreign story 404, no model 503. Every action that changes a story passes the dispatcher's
    admission first, as a chat turn does: refused at once (503 busy) past the user's share."""
    if not request.path.startswith("/api/stories"):
        return await handler(request)
    try:
        admission = request.app[SERVICES].admission
        if request.method in ("GET", "HEAD", "OPTIONS") or admission is None:
            return await handler(request)
        with admission.entered(user_key("api", "", await _user(request))):
            return await handler(request)
    except Busy:
        # Refused for overload: the header says the language, no story is looked up.
        message = BUSY_MESSAGE[request.get(_LANGUAGE) or accepted_language(request)]
        return web.json_response({"error": {"code": "busy", "message": message}}, status=503,
                                 headers={"Retry-After": str(BUSY_RETRY_S)})
    except InputError as exc:
        return json_error(400, "invalid", exc.in_language(await _language(request)))
    except NotFound:
        return json_error(404, "not_found", NO_SUCH_STORY[await _language(request)])
    except ModelUnavailable:
        return json_error(503, "model_unavailable", NO_MODEL[await _language(request)])


def accepted_language(request: web.Request) -> str:
    """The first language of the Accept-Language header ("ru-RU,ru;q=0.9" is ru) when it is one
    Tandem speaks, else English."""
    first = request.headers.get("Accept-Language", "").split(",", 1)[0]
    tag = first.split(";", 1)[0].strip().split("-", 1)[0].lower()
    return tag if tag in LANGUAGES else "en"


async def _language(request: web.Request) -> str:
    """The language of this request's messages: the story's, when the request names a story of its
    user (or starts one in a language), else the Accept-Language header's."""
    language = request.get(_LANGUAGE)
    if language is None:
        language = request[_LANGUAGE] = await _story_language(request) or accepted_language(request)
    return language


async def _story_language(request: web.Request) -> str | None:
    user_id, raw = request.get(_USER), request.match_info.get("story_id")
    service = request.app[SERVICES].stories
    if user_id is None or raw is None or service is None:
        return None
    with contextlib.suppress(BotError, ValueError, OverflowError):
        language = (await service.repo.get_story(user_id, int(raw))).language
        return language if language in LANGUAGES else None
    return None


def _service(request: web.Request) -> StoryService:
    service = request.app[SERVICES].stories
    if service is None:
        raise web.HTTPServiceUnavailable(reason="story writing is not configured")
    return service


async def _user(request: web.Request) -> int:
    """The request's user, authenticated once per request (the admission gate needs it first)."""
    user_id = request.get(_USER)
    if user_id is None:
        user_id = request[_USER] = await authenticated_user(request)
    return user_id


async def _story(request: web.Request) -> tuple[StoryService, int, int]:
    user_id = await _user(request)
    return _service(request), user_id, _path_id(request, "story_id")


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not -MAX_INT - 1 <= value <= MAX_INT:
        raise refusal(f"`{key}` must be a whole number.", f"`{key}` должно быть целым числом.")
    return value


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise refusal(f"`{key}` must be a string.", f"`{key}` должно быть строкой.")
    return clean_text(value)


# The deepest a story body nests (an export is five levels deep); past this it is refused, not
# walked: deep nesting only ends in a RecursionError.
MAX_NESTING = 32
# Numbers past a 64-bit column are refused before anything reaches the database.
MAX_INT = 2**63 - 1


def _cleaned(value: Any, depth: int = 0) -> Any:
    """Every string inside a JSON value cleaned as chat text is (an import holds dozens); nesting
    past MAX_NESTING and integers past MAX_INT are refused."""
    if depth > MAX_NESTING:
        raise refusal(f"That is nested too deeply (more than {MAX_NESTING} levels).",
                      f"Слишком глубокая вложенность (больше {MAX_NESTING} уровней).")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise refusal("A number in it is too large.", "Одно из чисел слишком большое.")
    if isinstance(value, list):
        return [_cleaned(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): _cleaned(item, depth + 1) for key, item in value.items()}
    return value


def _wants_stream(request: web.Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "") or request.query.get("stream") == "1"


# --- stories ------------------------------------------------------------------------

async def list_stories(request: web.Request) -> web.Response:
    user_id = await _user(request)
    return web.json_response({"stories": await _service(request).list_stories(user_id)})


async def start_story(request: web.Request) -> web.Response:
    user_id = await _user(request)
    await spend_turn_budget(request, user_id)
    body = await read_json(request)
    if body.get("language") in LANGUAGES:
        request[_LANGUAGE] = body["language"]  # the new story's: its refusals are in it too
    fields = {key: _text(body, key, required=False) for key in ("title", "genre", "premise", "style", "text")}
    settings = body.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise refusal("`settings` must be an object.", "`settings` должно быть объектом.")
    language = body.get("language")
    if language not in LANGUAGES:
        # Not given, or one Tandem does not write in: the language the user talks to Tandem in,
        # else the browser's.
        spoken = await request.app[SERVICES].conversations.last_language(user_id)
        language = spoken if spoken in LANGUAGES else accepted_language(request)
    view = await _service(request).start(user_id, language=language, settings=settings, **fields)
    return web.json_response({"story": view.to_json()}, status=201)


async def import_story(request: web.Request) -> web.Response:
    user_id = await _user(request)
    await spend_turn_budget(request, user_id)
    view = await _service(request).import_(user_id, _cleaned(await read_json(request)))
    return web.json_response({"story": view.to_json()}, status=201)


async def get_story(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    return web.json_response({"story": (await service.view(user_id, story_id)).to_json()})


async def patch_story(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    unknown = set(body) - {"title", "memory", "author_note", "genre", "premise", "style"}
    if unknown:
        raise refusal(f"Unknown field {sorted(unknown)[0]!r}.", f"Неизвестное поле {sorted(unknown)[0]!r}.")
    await service.repo.get_story(user_id, story_id)  # 404 before anything changes
    fields = {key: clean_text(value) if isinstance(value, str) else value for key, value in body.items()}
    view = await service.update_details(user_id, story_id, fields)  # all fields checked before any is stored
    return web.json_response({"story": view.to_json()})


async def delete_story(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    story = await service.repo.get_story(user_id, story_id)
    if request.query.get("confirm") != "true":
        language = story.language if story.language in LANGUAGES else await _language(request)
        return json_error(409, "confirmation_required", CONFIRM_DELETE[language].format(title=story.title))
    await service.delete(user_id, story_id)
    return web.Response(status=204)


async def get_tree(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    return web.json_response({"passages": await service.tree(user_id, story_id)})


# --- writing ------------------------------------------------------------------------

async def write_passage(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    await spend_turn_budget(request, user_id)
    body = await read_json(request)
    view = await service.write(user_id, story_id, _text(body, "text"))
    return web.json_response({"story": view.to_json()}, status=201)


async def continue_story(request: web.Request) -> web.StreamResponse:
    service, user_id, story_id = await _story(request)
    await spend_turn_budget(request, user_id)
    body = await read_json(request) if request.can_read_body else {}
    events = service.continue_(user_id, story_id, text=_text(body, "text", required=False),
                               candidates=_int(body, "candidates"))
    return await _respond_generation(request, events)


async def retry_story(request: web.Request) -> web.StreamResponse:
    service, user_id, story_id = await _story(request)
    await spend_turn_budget(request, user_id)
    body = await read_json(request) if request.can_read_body else {}
    return await _respond_generation(request, service.retry(user_id, story_id, candidates=_int(body, "candidates")))


async def _respond_generation(request: web.Request, events: AsyncIterator[Any]) -> web.StreamResponse:
    """JSON of the finished generation, or SSE: `delta` pieces, a `candidate` as each is stored,
    then `done` with the story. Bad input fails before the stream opens (400/404).

    The generation runs in a task of its own, under the story budget: a client that leaves, or a
    generation past the budget, cancels it, and the passage so far is stored as incomplete."""
    first = await anext(events)  # raises InputError/NotFound while a plain error answer is still possible
    language = await _language(request)  # now, while the story is surely readable
    budget_s = request.app[SERVICES].story_budget_s
    queue: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:
        try:
            async with asyncio.timeout(budget_s):
                async for event in events:
                    queue.put_nowait(event)
            queue.put_nowait(_END)
        except TimeoutError:
            log.warning("story generation over budget budget_s=%.0f", budget_s)
            queue.put_nowait(_TIMEOUT)
        except StorageError:
            queue.put_nowait(_NOT_STORED)

    pumping = asyncio.create_task(pump())
    try:
        if not _wants_stream(request):
            done = first
            while (item := await queue.get()) is not _END:
                if item is _NOT_STORED:
                    raise StorageError("the story could not be stored")
                if item is _TIMEOUT:
                    return json_error(504, "timeout", TOO_SLOW[language])
                done = item
            assert isinstance(done, GenerationDone)
            return web.json_response(done.to_json())
        sse = await SseStream(request).open()

        async def generated() -> AsyncIterator[Any]:
            yield first
            while (item := await queue.get()) is not _END:
                yield item

        async for item in sse.relay(generated()):
            if item is _NOT_STORED:
                # The stream is open, so no error status can be sent: the error is its last event.
                # What the events before it called stored is stored; the rest was not.
                await sse.send("error", {"code": "storage_unavailable", "message": NOT_SAVED[language]})
                break
            if item is _TIMEOUT:
                await sse.send("error", {"code": "timeout", "message": TOO_SLOW[language]})
                break
            if not await sse.send(*_sse(item)):
                break
        # A client that left (a closed tab, a dropped connection, Stop) is noticed within a second;
        # the generation is cancelled below and the passage so far is stored, incomplete.
        return sse.response
    finally:
        if not pumping.done():
            pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)


def _sse(event: Any) -> tuple[str, dict]:
    """A story event as an SSE event's name and data."""
    if isinstance(event, PassageDelta):
        data = {"candidate": event.candidate, "of": event.total, "text": event.text}
        if event.reset:
            data["reset"] = True  # the candidate is written again: clear what was shown of it
        return "delta", data
    if isinstance(event, CandidateDone):
        return "candidate", {"candidate": event.candidate, "error": event.error,
                             "passage": passage_json(event.passage) if event.passage else None}
    return "done", event.to_json()


async def choose(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    number, passage_id = _int(body, "candidate"), _int(body, "passage_id")
    if number is None and passage_id is None:
        raise refusal("Give `candidate` (1, 2, ...) or `passage_id`.",
                      "Укажи `candidate` (1, 2, ...) или `passage_id`.")
    view = await service.choose(user_id, story_id, number=number, passage_id=passage_id)
    return web.json_response({"story": view.to_json()})


async def swipe(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    passage_id, direction = _int(body, "passage_id"), _int(body, "direction")
    if passage_id is None or direction is None:
        raise refusal("Give `passage_id` and `direction` (-1 or 1).", "Укажи `passage_id` и `direction` (-1 или 1).")
    view = await service.swipe(user_id, story_id, passage_id, direction)
    return web.json_response({"story": view.to_json()})


async def rate_passage(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    value = _int(body, "value")
    if value is None:
        raise refusal("Give `value`: 1, -1 or 0.", "Укажи `value`: 1, -1 или 0.")
    passage = await service.rate(user_id, story_id, _path_id(request, "passage_id"), value)
    return web.json_response({"passage": passage})


async def context(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    return web.json_response(await service.context(user_id, story_id))


async def undo(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    return web.json_response({"story": (await service.undo(user_id, story_id)).to_json()})


async def redo(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    return web.json_response({"story": (await service.redo(user_id, story_id)).to_json()})


async def edit(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    view = await service.edit(user_id, story_id, _text(body, "text"), number=_int(body, "number"),
                              passage_id=_int(body, "passage_id"))
    return web.json_response({"story": view.to_json()})


async def branch(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    number, passage_id = _int(body, "number"), _int(body, "passage_id")
    if number is None and passage_id is None:
        raise refusal("Give `number` (a passage of the current story, 0 = before the first) or `passage_id`.",
                      "Укажи `number` (отрывок текущей истории, 0 — перед первым) или `passage_id`.")
    view = await service.branch(user_id, story_id, number=number, passage_id=passage_id)
    return web.json_response({"story": view.to_json()})


# --- export, settings, lore, characters -------------------------------------------------------

async def export(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    name, content_type, content = await service.export(user_id, story_id, request.query.get("format", "md"))
    return web.Response(text=content, content_type=content_type, charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def get_settings(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    story = await service.repo.get_story(user_id, story_id)
    return web.json_response({"settings": service.settings_of(story).model_dump()})


async def patch_settings(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    settings = await service.update_settings(user_id, story_id, await read_json(request))
    return web.json_response({"settings": settings.model_dump()})


async def _lore_json(service: StoryService, entry) -> dict[str, Any]:
    return {"id": entry.id, "keys": list(entry.keys), "text": entry.text, "enabled": entry.enabled,
            "tokens": await service.count_tokens(entry.text)}


def _lore_keys(body: dict[str, Any]) -> list[str] | None:
    keys = body.get("keys")
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = keys.split(",")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise refusal("`keys` must be a list of keywords.", "`keys` должно быть списком ключевых слов.")
    return _cleaned(keys)


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise refusal(f"`{key}` must be true or false.", f"`{key}` должно быть true или false.")
    return value


async def list_lore(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    entries = await service.lore(user_id, story_id)
    return web.json_response({"lore": [await _lore_json(service, e) for e in entries]})


async def add_lore(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    enabled = _bool(body, "enabled")
    entry = await service.set_lore(user_id, story_id, _lore_keys(body) or [], _text(body, "text"),
                                   enabled is not False)
    return web.json_response(await _lore_json(service, entry), status=201)


async def patch_lore(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    body = await read_json(request)
    unknown = set(body) - {"keys", "text", "enabled"}
    if unknown:
        raise refusal(f"Unknown field {sorted(unknown)[0]!r}.", f"Неизвестное поле {sorted(unknown)[0]!r}.")
    entry = await service.update_lore(user_id, story_id, _path_id(request, "lore_id"), keys=_lore_keys(body),
                                      text=_text(body, "text", required=False), enabled=_bool(body, "enabled"))
    return web.json_response(await _lore_json(service, entry))


def _path_id(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise NotFound(name) from None
    if not 0 < value <= MAX_INT:
        raise NotFound(name)  # no row has such an id (and the database could not be asked)
    return value


async def remove_lore(request: web.Request) -> web.Response:
    service, user_id, story_id = await _story(request)
    await service.remove_lore(user_id, story_id, _path_id(request, "lore_id"))
    return web.Response(status=204)


async def character(request: web.Request) -> web.StreamResponse:
    service, user_id, story_id = await _story(request)
    await spend_turn_budget(request, user_id)
    body = await read_json(request)
    history = body.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in history
    ):
        raise refusal("`history` must be a list of [question, answer] pairs.",
                      "`history` должно быть списком пар [вопрос, ответ].")
    name = _text(body, "name")
    pieces = service.character(user_id, story_id, name, _text(body, "question"),
                               [tuple(h) for h in _cleaned(history)])
    first = await anext(pieces, "")
    if not _wants_stream(request):
        answer = first + "".join([piece async for piece in pieces])
        return web.json_response({"name": name, "answer": answer.strip()})
    sse = await SseStream(request).open()
    answer = first
    await sse.send("delta", {"text": first})
    async for piece in sse.relay(pieces):
        answer += piece
        if not await sse.send("delta", {"text": piece}):
            break
    # A client that left stops the answer (nothing of it is stored).
    await sse.send("done", {"name": name, "answer": answer.strip()})
    return sse.response


def add_routes(app: web.Application) -> None:
    app.middlewares.append(story_errors)
    r = app.router
    r.add_get("/api/stories", list_stories)
    r.add_post("/api/stories", start_story)
    r.add_post("/api/stories/import", import_story)
    r.add_get("/api/stories/{story_id}", get_story)
    r.add_patch("/api/stories/{story_id}", patch_story)
    r.add_delete("/api/stories/{story_id}", delete_story)
    r.add_get("/api/stories/{story_id}/tree", get_tree)
    r.add_post("/api/stories/{story_id}/passages", write_passage)
    r.add_post("/api/stories/{story_id}/continue", continue_story)
    r.add_post("/api/stories/{story_id}/retry", retry_story)
    r.add_post("/api/stories/{story_id}/choose", choose)
    r.add_post("/api/stories/{story_id}/undo", undo)
    r.add_post("/api/stories/{story_id}/redo", redo)
    r.add_post("/api/stories/{story_id}/edit", edit)
    r.add_post("/api/stories/{story_id}/branch", branch)
    r.add_post("/api/stories/{story_id}/swipe", swipe)
    r.add_post("/api/stories/{story_id}/passages/{passage_id}/rating", rate_passage)
    r.add_get("/api/stories/{story_id}/context", context)
    r.add_get("/api/stories/{story_id}/export", export)
    r.add_get("/api/stories/{story_id}/settings", get_settings)
    r.add_patch("/api/stories/{story_id}/settings", patch_settings)
    r.add_get("/api/stories/{story_id}/lore", list_lore)
    r.add_post("/api/stories/{story_id}/lore", add_lore)
    r.add_patch("/api/stories/{story_id}/lore/{lore_id}", patch_lore)
    r.add_delete("/api/stories/{story_id}/lore/{lore_id}", remove_lore)
    r.add_post("/api/stories/{story_id}/character", character)
