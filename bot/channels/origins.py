"""Which web origins may use Tandem from a browser: the WebSocket Origin check and CORS on HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from bot.channels.services import SERVICES

log = logging.getLogger(__name__)

# Paths a page on another origin may call with fetch(); pages, the dashboard and /ws are not among them.
CORS_PREFIXES = ("/api/",)
CORS_HEADERS = "Authorization, Content-Type, Accept"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(origin: str | None, request: web.Request, allowed: Iterable[str]) -> bool:
    """True for no Origin (not a browser), the server's own origin, and configured origins.

    Browsers always send Origin on a WebSocket handshake, so this is what stops a page on
    another site from opening a socket with a visitor's stored session token."""
    if not origin:
        return True
    origin = origin.rstrip("/").lower()
    if origin == own_origin(request).lower():
        return True
    allowed = tuple(a.rstrip("/").lower() for a in allowed)
    return "*" in allowed or origin in allowed


def _allowed(request: web.Request) -> tuple[str, ...]:
    return tuple(request.app[SERVICES].settings.server.allowed_origins)


@web.middleware
async def cors(request: web.Request, handler) -> web.StreamResponse:
    """CORS for the JSON API: configured origins get the Access-Control headers, others do not
    (the browser then refuses to hand them the answer). Preflights are answered here."""
    origin = request.headers.get("Origin")
    if not origin or not request.path.startswith(CORS_PREFIXES) or origin.rstrip("/") == own_origin(request):
        return await handler(request)
    allowed = origin_allowed(origin, request, _allowed(request))
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            log.info("cors preflight refused origin=%s path=%s", origin, request.path)
            return web.Response(status=403, text="origin not allowed")
        return web.Response(status=204, headers=_headers(origin))
    response = await handler(request)
    if allowed:
        response.headers.update(_headers(origin))
    return response


def _headers(origin: str) -> dict[str, str]:
    # Bearer tokens, not cookies, so no Allow-Credentials; Vary keeps caches per origin.
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def add_middleware(app: web.Application) -> None:
    """Put CORS outermost, so error answers carry the headers too (a browser hides them otherwise);
    call before the app starts (middlewares freeze then)."""
    app.middlewares.insert(0, cors)
