"""The widget's static files (widget.js, widget.css, widget-story.js) and the demo page at `/`."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
# name -> content type; only these files are served, so nothing else in the package is reachable.
FILES = {
    "widget.js": "text/javascript",
    "widget-story.js": "text/javascript",
    "widget.css": "text/css",
}
# Short cache: a page embedding the widget picks up a new version within minutes.
CACHE = "public, max-age=300"
# The demo page runs only our own scripts; nothing else may run or frame it.
DEMO_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")


def _static(name: str, content_type: str):
    async def handler(request: web.Request) -> web.Response:
        body = (STATIC_DIR / name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"})

    return handler


async def demo_page(request: web.Request) -> web.Response:
    body = (STATIC_DIR / "index.html").read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": DEMO_CSP, "Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", demo_page)
    for name, content_type in FILES.items():
        app.router.add_get(f"/{name}", _static(name, content_type))
