"""The aiohttp application factory: routes, JSON errors, health check, and the app's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from aiohttp import web

from bot.app import Tandem
from bot.channels import http_api, ratelimit, story_api
from bot.channels.services import SERVICES, Services
from bot.core.errors import StorageError
from bot.core.log_limits import throttle_server_errors
from bot.workers import worker_index

log = logging.getLogger(__name__)

TANDEM: web.AppKey[Tandem] = web.AppKey("tandem", Tandem)
NOT_SAVED = "I can't save anything right now, so that was not stored. Please try again in a moment."


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every error leaves as JSON with a clear message; no traceback ever reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = http_api.json_error(exc.status, _code(exc.status), exc.reason or "error")
        if "Retry-After" in exc.headers:
            response.headers["Retry-After"] = exc.headers["Retry-After"]
        return response
    except StorageError:
        # Logged where it happened; the client may retry once the database is back.
        return http_api.json_error(503, "storage_unavailable", NOT_SAVED)
    except Exception:
        log.exception("request failed path=%s", request.path)
        return http_api.json_error(500, "internal", "Something went wrong on our side. Please try again.")


def _code(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "too_large", 429: "rate_limited"}.get(status, "error")


async def healthz(request: web.Request) -> web.Response:
    tandem = request.app[TANDEM]
    # Which process answered: under `tandem run --workers N` each worker has its own.
    report: dict = {"status": "ok", "database": "ok", "pid": os.getpid(), "worker": worker_index()}
    health = getattr(tandem.language_model, "health", None)
    if health is not None:
        # The model's state is reported, not judged: the server answers everything else without it.
        report["model"] = health()
    try:
        await tandem.db.ping()
    except Exception:  # noqa: BLE001 - health is reported, not raised
        return web.json_response({**report, "status": "degraded", "database": "unavailable"}, status=503)
    return web.json_response(report)


def init_app(tandem: Tandem) -> web.Application:
    """Build the web application over a running Tandem (the caller owns Tandem's lifecycle)."""
    throttle_server_errors()  # malformed requests and dropped uploads: one line per kind a minute
    app = web.Application(middlewares=[json_errors], client_max_size=tandem.settings.server.max_body_bytes)
    app[TANDEM] = tandem
    server = tandem.settings.server
    ratelimit.install(app, per_ip=server.rate_limit_per_ip, per_user=server.rate_limit_per_user,
                      trust_forwarded_for=server.trust_forwarded_for,
                      redis_url=server.redis_url.get_secret_value() if server.redis_url else None)
    story_skill = tandem.skills.get("story")
    app[SERVICES] = Services(tandem.settings, tandem.handle_turn, tandem.conversations, tandem.feedback,
                             stories=tandem.stories, admission=tandem.dispatcher.admission,
                             story_budget_s=getattr(story_skill, "time_budget_s", None) or 300.0)
    app.router.add_get("/healthz", healthz)
    http_api.add_routes(app)
    if tandem.settings.telegram_token is not None:
        from bot.channels import telegram  # imported only when used: python-telegram-bot is an extra

        telegram.install(app, app[SERVICES])
    story_api.add_routes(app)
    _add_web(app, tandem)
    if tandem.settings.anonymous_user_retention_days > 0:
        app.cleanup_ctx.append(_retention)
    return app


async def _retention(app: web.Application):
    """Deletes idle anonymous users with no data for as long as the server runs."""
    from bot.storage.retention import run_retention

    tandem = app[TANDEM]
    task = asyncio.create_task(run_retention(tandem.db, tandem.settings.anonymous_user_retention_days),
                               name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _add_web(app: web.Application, tandem: Tandem) -> None:
    """The web widget (WebSocket, static files, demo page), CORS, and the feedback dashboard."""
    from bot.channels import origins, websocket
    from bot.web import dashboard, pages

    origins.add_middleware(app)
    websocket.add_routes(app)
    pages.add_routes(app)
    dashboard.add_routes(app, tandem.db, tandem.settings)
