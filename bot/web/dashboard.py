"""The feedback dashboard at /admin behind TANDEM_ADMIN_TOKEN: the report as HTML with SVG charts,
and the feedback export as CSV and JSON.

Sign-in: `Authorization: Bearer TOKEN` (compared in constant time), or the login form: the right
token makes a server-side session (bot/storage/admin_sessions.py) whose random secret goes into an
HttpOnly, SameSite=Strict cookie on /admin. The session ends at `admin_session_hours`, at sign-out,
or at `tandem admin revoke`, on every worker at once. Pages come from the autoescaped Jinja
templates in bot/web/templates/.
"""

from __future__ import annotations

import functools
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

import jinja2
from aiohttp import web

from bot.channels.ratelimit import client_ip
from bot.settings import Settings
from bot.storage.admin_sessions import AdminSessionRecord, AdminSessionRepo
from bot.storage.database import Database
from bot.storage.reports import FeedbackReport, build_report, export_chunks
from bot.web.charts import bar_chart, gauge, line_chart, up_down_bars

log = logging.getLogger(__name__)

COOKIE = "tandem_admin"
DEFAULT_DAYS = 30
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class DashboardConfig:
    db: Database
    token: str | None
    sessions: AdminSessionRepo
    session_lifetime: timedelta
    trust_forwarded_for: bool = False


DASHBOARD: web.AppKey[DashboardConfig] = web.AppKey("dashboard", DashboardConfig)


@dataclass(frozen=True)
class AdminAuth:
    """Who an /admin request is: `admin` when its bearer token or its session cookie is good;
    `session` is the cookie's valid session, if any."""

    admin: bool
    session: AdminSessionRecord | None = None


ADMIN_AUTH: web.RequestKey[AdminAuth] = web.RequestKey("tandem_admin_auth", AdminAuth)


@web.middleware
async def admin_auth(request: web.Request, handler) -> web.StreamResponse:
    """Resolve the sign-in of every /admin request once, before its handler runs (a cookie costs
    one lookup in admin_sessions; the bearer token none)."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        request[ADMIN_AUTH] = await _authenticate(request)
    return await handler(request)


async def _authenticate(request: web.Request) -> AdminAuth:
    config = request.app[DASHBOARD]
    if not config.token:
        return AdminAuth(False)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return AdminAuth(hmac.compare_digest(given.strip().encode(), config.token.encode()))
    cookie = request.cookies.get(COOKIE, "")
    session = await config.sessions.lookup(cookie) if cookie else None
    return AdminAuth(session is not None, session)


def is_admin(request: web.Request) -> bool:
    auth = request.get(ADMIN_AUTH)
    return auth is not None and auth.admin


def _html(template: str, status: int = 200, **context) -> web.Response:
    page = templates().get_template(template).render(**context)
    return web.Response(text=page, content_type="text/html", status=status, headers=SECURITY_HEADERS)


def _require(request: web.Request) -> None:
    if not request.app[DASHBOARD].token:
        raise web.HTTPServiceUnavailable(reason="the dashboard is off: set TANDEM_ADMIN_TOKEN")
    if not is_admin(request):
        raise web.HTTPUnauthorized(reason="admin token required (Authorization: Bearer TOKEN or /admin/login)")


def _days(request: web.Request) -> int:
    try:
        return max(1, min(365, int(request.query.get("days", DEFAULT_DAYS))))
    except ValueError:
        return DEFAULT_DAYS


# --- pages ---------------------------------------------------------------------------------------

async def login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    if not request.app[DASHBOARD].token:
        return _html("off.html", 503, title="Tandem dashboard")
    return _html("login.html", status, title="Sign in — Tandem", error=error)


async def login(request: web.Request) -> web.StreamResponse:
    config = request.app[DASHBOARD]
    try:
        form = await request.post()
    except (LookupError, ValueError):
        # A charset Python does not know ("charset=nope") or a body that is not the form it says.
        return await login_form(request, "That sign-in form could not be read; send it again.", 400)
    given = str(form.get("token", ""))
    if not config.token or not hmac.compare_digest(given.encode(), config.token.encode()):
        log.warning("dashboard login refused remote=%s", request.remote)
        return await login_form(request, "That token is not right.", 401)
    await _end_session(request)  # a browser signing in again keeps one session, not two
    await config.sessions.delete_expired()
    secret = await config.sessions.create(config.session_lifetime,
                                          client_ip(request, config.trust_forwarded_for))
    log.info("dashboard login remote=%s", request.remote)
    response = web.HTTPSeeOther("/admin")
    response.set_cookie(COOKIE, secret, max_age=int(config.session_lifetime.total_seconds()), httponly=True,
                        samesite="Strict", secure=request.secure, path="/admin")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await _end_session(request)
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response


async def _end_session(request: web.Request) -> None:
    """Revoke the session of the request's cookie, if it names a valid one."""
    auth = request.get(ADMIN_AUTH)
    if auth is not None and auth.session is not None:
        await request.app[DASHBOARD].sessions.revoke(auth.session.id)


async def dashboard(request: web.Request) -> web.StreamResponse:
    if not request.app[DASHBOARD].token or not is_admin(request):
        raise web.HTTPSeeOther("/admin/login")
    days = _days(request)
    report = await build_report(request.app[DASHBOARD].db, days=days)
    return web.Response(text=render(report), content_type="text/html", headers=SECURITY_HEADERS)


async def report_json(request: web.Request) -> web.Response:
    _require(request)
    report = await build_report(request.app[DASHBOARD].db, days=_days(request))
    return web.json_response(report.to_json(), headers={"Cache-Control": "no-store"})


async def export(request: web.Request) -> web.StreamResponse:
    """The feedback export, streamed a page of rows at a time (constant memory however much
    feedback there is). A client that goes away mid-download ends it quietly."""
    _require(request)
    fmt = request.match_info["fmt"]
    response = web.StreamResponse(headers={
        "Content-Type": f"{'text/csv' if fmt == 'csv' else 'application/json'}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="tandem-feedback.{fmt}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })
    await response.prepare(request)
    try:
        async for chunk in export_chunks(request.app[DASHBOARD].db, fmt):
            await response.write(chunk.encode("utf-8"))
    except ConnectionResetError:
        return response
    await response.write_eof()
    return response


# --- rendering -------------------------------------------------------------------------------------

@functools.cache
def templates() -> jinja2.Environment:
    """The dashboard's templates, loaded from the installed package and escaped by default."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("bot.web", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["duration"] = _duration
    return env


def _fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "—" if value is None else pattern.format(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def render(report: FeedbackReport) -> str:
    """The whole dashboard page for `report`."""
    st = report.stories
    charts = {
        "activity": line_chart([d.day for d in report.by_day], {
            "conversations": [d.conversations for d in report.by_day],
            "turns": [d.turns for d in report.by_day],
            "users": [d.users for d in report.by_day],
        }, f"Conversations, turns and users per day over the last {report.days} days"),
        "ratings": bar_chart([(f"{k}★", report.rating_distribution.get(k, 0)) for k in range(1, 6)],
                             "Distribution of conversation ratings"),
        "offers": gauge(report.offer_response_rate, "Share of rating offers answered",
                        f"{report.offers_answered} of {report.offers} offers"),
        "by_skill": up_down_bars([(s.key, s.up, s.down) for s in report.thumbs_by_skill],
                                 "Thumbs up and down by skill"),
        "by_node": up_down_bars([(s.key, s.up, s.down) for s in report.thumbs_by_node],
                                "Thumbs up and down by dialog graph node"),
        "stories_by_author": bar_chart(
            [("user", st.passages_user), ("model", st.passages_model), ("edited", st.passages_edited)],
            f"Passages by author over the last {report.days} days"),
        "stories_chosen": gauge(st.candidate_choice_rate, "Share of alternative passages chosen",
                                f"{st.candidates_chosen} of {st.candidates} candidates"),
    }
    return templates().get_template("dashboard.html").render(title="Tandem dashboard", report=report, charts=charts)


def add_routes(app: web.Application, db: Database, settings: Settings) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app[DASHBOARD] = DashboardConfig(db, token or None, AdminSessionRepo(db),
                                     timedelta(hours=settings.admin_session_hours),
                                     settings.server.trust_forwarded_for)
    app.middlewares.append(admin_auth)
    app.router.add_get("/admin", dashboard)
    app.router.add_get("/admin/login", login_form)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
    app.router.add_get("/admin/report.json", report_json)
    app.router.add_get(r"/admin/feedback.{fmt:(csv|json)}", export)
