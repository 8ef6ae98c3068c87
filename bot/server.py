"""The aiohttp application factory: routes, JSON errors, health check, and the app's lifecycle."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text

from bot.app import Tandem
from bot.channels import http_api, story_api
from bot.channels.services import SERVICES, Services

log = logging.getLogger(__name__)

TANDEM: web.AppKey[Tandem] = web.AppKey("tandem", Tandem)


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    """Every error leaves as JSON with a clear message; no traceback ever reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_api.json_error(exc.status, _code(exc.status), exc.reason or "error")
    except Exception:
        log.exception("request failed path=%s", request.path)
        return http_api.json_error(500, "internal", "Something went wrong on our side. Please try again.")


def _code(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "too_large", 429: "rate_limited"}.get(status, "error")


async def healthz(request: web.Request) -> web.Response:
    tandem = request.app[TANDEM]
    try:
        async with tandem.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - health is reported, not raised
        return web.json_response({"status": "degraded", "database": "unavailable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


def init_app(tandem: Tandem) -> web.Application:
    """Build the web application over a running Tandem (the caller owns Tandem's lifecycle)."""
    app = web.Application(middlewares=[json_errors], client_max_size=tandem.settings.server.max_body_bytes)
    app[TANDEM] = tandem
    app[SERVICES] = Services(tandem.settings, tandem.handle_turn, tandem.conversations, tandem.feedback,
                             stories=tandem.stories)
    app.router.add_get("/healthz", healthz)
    http_api.add_routes(app)
    if tandem.settings.telegram_token is not None:
        from bot.channels import telegram  # imported only when used: python-telegram-bot is an extra

        telegram.install(app, app[SERVICES])
    story_api.add_routes(app)
    _add_web(app, tandem)
    return app


def _add_web(app: web.Application, tandem: Tandem) -> None:
    """The web widget (WebSocket, static files, demo page), CORS, and the feedback dashboard."""
    from bot.channels import origins, websocket
    from bot.web import dashboard, pages

    origins.add_middleware(app)
    websocket.add_routes(app)
    pages.add_routes(app)
    dashboard.add_routes(app, tandem.db, tandem.settings)
