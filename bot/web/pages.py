"""The widget's static files (widget.js, widget.css, widget-story.js, sse-reader.js), the demo page at `/` and the
writing studio at `/write` (studio.html, studio.js, studio-texts.js, studio.css)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
# name -> content type; only these files are served, so nothing else in the package is reachable.
FILES = {
    "widget.js": "text/javascript",
    "widget-story.js": "text/javascript",
    "sse-reader.js": "text/javascript",
    "widget.css": "text/css",
    "studio.js": "text/javascript",
    "studio-texts.js": "text/javascript",
    "studio.css": "text/css",
}
# Short cache: a page embedding the widget picks up a new version within minutes.
CACHE = "public, max-age=300"
# The demo page runs only our own scripts; nothing else may run or frame it.
DEMO_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
# The studio shows what users and models write: only our own script and styles, no inline code, so
# text that slipped into markup still could not run.
STUDIO_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
              "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")


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


async def studio_page(request: web.Request) -> web.Response:
    body = (STATIC_DIR / "studio.html").read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": STUDIO_CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", demo_page)
    app.router.add_get("/write", studio_page)
    for name, content_type in FILES.items():
        app.router.add_get(f"/{name}", _static(name, content_type))
