"""The feedback dashboard at /admin behind TANDEM_ADMIN_TOKEN: the report as HTML with SVG charts,
and the feedback export as CSV and JSON.

Sign-in: `Authorization: Bearer TOKEN`, or the login form, which sets an HttpOnly, SameSite=Strict
cookie holding an HMAC of the token (never the token itself). Both compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from html import escape

from aiohttp import web

from bot.settings import Settings
from bot.storage.database import Database
from bot.storage.reports import FeedbackReport, build_report, feedback_rows, rows_to_csv, rows_to_json
from bot.web.charts import bar_chart, gauge, line_chart, up_down_bars

log = logging.getLogger(__name__)

COOKIE = "tandem_admin"
COOKIE_MAX_AGE_S = 8 * 3600
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


DASHBOARD: web.AppKey[DashboardConfig] = web.AppKey("dashboard", DashboardConfig)


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"tandem-admin-session", hashlib.sha256).hexdigest()


def is_admin(request: web.Request) -> bool:
    token = request.app[DASHBOARD].token
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return hmac.compare_digest(given.strip().encode(), token.encode())
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), _session_value(token).encode())


def _html(body: str, status: int = 200, title: str = "Tandem dashboard") -> web.Response:
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body>{body}</body></html>')
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
        return _html('<main class="narrow"><h1>Dashboard off</h1><p>Set <code>TANDEM_ADMIN_TOKEN</code> in the '
                     'environment and restart Tandem to open the feedback dashboard.</p></main>', 503)
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _html(
        '<main class="narrow"><h1>Tandem dashboard</h1>' + message +
        '<form method="post" action="/admin/login"><label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        '<button type="submit">Sign in</button></form></main>', status, "Sign in — Tandem")


async def login(request: web.Request) -> web.StreamResponse:
    token = request.app[DASHBOARD].token
    try:
        form = await request.post()
    except (LookupError, ValueError):
        # A charset Python does not know ("charset=nope") or a body that is not the form it says.
        return await login_form(request, "That sign-in form could not be read; send it again.", 400)
    given = str(form.get("token", ""))
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        log.warning("dashboard login refused remote=%s", request.remote)
        return await login_form(request, "That token is not right.", 401)
    response = web.HTTPSeeOther("/admin")
    response.set_cookie(COOKIE, _session_value(token), max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Strict",
                        secure=request.secure, path="/admin")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response


async def dashboard(request: web.Request) -> web.StreamResponse:
    if not request.app[DASHBOARD].token or not is_admin(request):
        raise web.HTTPSeeOther("/admin/login")
    days = _days(request)
    report = await build_report(request.app[DASHBOARD].db, days=days)
    return _html(render(report))


async def report_json(request: web.Request) -> web.Response:
    _require(request)
    report = await build_report(request.app[DASHBOARD].db, days=_days(request))
    return web.json_response(report.to_json(), headers={"Cache-Control": "no-store"})


async def export(request: web.Request) -> web.Response:
    _require(request)
    rows = await feedback_rows(request.app[DASHBOARD].db)
    fmt = request.match_info["fmt"]
    body, content_type = (rows_to_csv(rows), "text/csv") if fmt == "csv" else (rows_to_json(rows), "application/json")
    return web.Response(text=body, content_type=content_type, headers={
        "Content-Disposition": f'attachment; filename="tandem-feedback.{fmt}"', "Cache-Control": "no-store",
    })


# --- rendering -------------------------------------------------------------------------------------

def _card(label: str, value: str, note: str = "") -> str:
    note_html = f"<small>{escape(note)}</small>" if note else ""
    return f'<div class="card"><span>{escape(label)}</span><strong>{escape(value)}</strong>{note_html}</div>'


def _fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "—" if value is None else pattern.format(value)


def _stories_panel(report: FeedbackReport) -> str:
    st = report.stories
    if not st.stories:
        return '<section class="panel wide"><h2>Stories</h2><p>No stories yet.</p></section>'
    cards = "".join([
        _card("Stories", str(st.stories), f"{st.stories_started} started in the last {report.days} days"),
        _card("Passages", str(st.passages), f"{st.passages_user} user, {st.passages_model} model, "
                                            f"{st.passages_edited} edited, last {report.days} days"),
        _card("Incomplete", str(st.model_incomplete), f"of {st.passages_model} model passages"),
        _card("Alternatives chosen", _fmt(st.candidate_choice_rate, "{:.0%}"),
              f"{st.candidates_chosen} of {st.candidates} candidates"),
        _card("Passage thumbs up", _fmt(st.thumbs_up_ratio, "{:.0%}"),
              f"{st.thumbs_up} up, {st.thumbs_down} down, all time"),
    ])
    by_author = bar_chart([("user", st.passages_user), ("model", st.passages_model), ("edited", st.passages_edited)],
                          f"Passages by author over the last {report.days} days")
    chosen = gauge(st.candidate_choice_rate, "Share of alternative passages chosen",
                   f"{st.candidates_chosen} of {st.candidates} candidates")
    return f"""<section class="panel wide"><h2>Stories</h2><section class="cards">{cards}</section>
<div class="grid"><div><h3>Passages by author, last {report.days} days</h3>{by_author}</div>
<div><h3>Alternatives chosen</h3>{chosen}</div></div></section>"""


def render(report: FeedbackReport) -> str:
    duration = report.average_duration_s
    duration_text = "—" if duration is None else (f"{duration / 60:.1f} min" if duration >= 60 else f"{duration:.0f} s")
    cards = "".join([
        _card("Conversations", str(report.conversations)),
        _card("Users", str(report.users)),
        _card("Turns", str(report.turns)),
        _card("Average rating", _fmt(report.rating_average, "{:.2f} ★"), f"{report.rating_count} ratings"),
        _card("Thumbs up", _fmt(report.thumbs_up_ratio, "{:.0%}"),
              f"{sum(s.total for s in report.thumbs_by_skill)} thumbs"),
        _card("Avg. conversation", _fmt(report.average_turns, "{:.1f} turns"),
              f"{_fmt(report.average_messages)} messages, {duration_text}"),
    ])
    labels = [d.day for d in report.by_day]
    activity = line_chart(labels, {
        "conversations": [d.conversations for d in report.by_day],
        "turns": [d.turns for d in report.by_day],
        "users": [d.users for d in report.by_day],
    }, f"Conversations, turns and users per day over the last {report.days} days")
    ratings = bar_chart([(f"{k}★", report.rating_distribution.get(k, 0)) for k in range(1, 6)],
                        "Distribution of conversation ratings")
    offers = gauge(report.offer_response_rate, "Share of rating offers answered",
                   f"{report.offers_answered} of {report.offers} offers")
    by_skill = up_down_bars([(s.key, s.up, s.down) for s in report.thumbs_by_skill], "Thumbs up and down by skill")
    by_node = up_down_bars([(s.key, s.up, s.down) for s in report.thumbs_by_node],
                           "Thumbs up and down by dialog graph node")
    comments = "".join(
        f'<tr><td>{escape(c.created_at[:16].replace("T", " "))}</td><td>{escape(c.kind)}'
        f'{"" if c.value is None else " " + escape(str(c.value))}</td><td>{escape(c.comment)}</td>'
        f'<td><code>{escape(c.conversation_id[:8])}</code></td></tr>'
        for c in report.latest_comments
    ) or '<tr><td colspan="4">No comments yet.</td></tr>'
    day_links = " · ".join(f'<a href="/admin?days={d}">{d} days</a>' for d in (7, 30, 90))
    return f"""
<header><h1>Tandem feedback</h1><nav>{day_links} · <a href="/admin/feedback.csv">feedback.csv</a> ·
<a href="/admin/feedback.json">feedback.json</a> · <a href="/admin/report.json?days={report.days}">report.json</a>
<form method="post" action="/admin/logout"><button type="submit">Sign out</button></form></nav></header>
<main>
<section class="cards">{cards}</section>
<section class="panel wide"><h2>Activity, last {report.days} days</h2>{activity}</section>
<div class="grid">
<section class="panel"><h2>Conversation ratings</h2>{ratings}
<p>Average <strong>{_fmt(report.rating_average, "{:.2f}")}</strong> of {report.rating_count} ratings.</p></section>
<section class="panel"><h2>Rating offers answered</h2>{offers}</section>
</div>
<section class="panel wide"><h2>Thumbs up by skill</h2>{by_skill}</section>
<section class="panel wide"><h2>Thumbs up by dialog graph node</h2>{by_node}</section>
{_stories_panel(report)}
<section class="panel wide"><h2>Latest comments</h2>
<table><thead><tr><th scope="col">When (UTC)</th><th scope="col">Kind</th><th scope="col">Comment</th>
<th scope="col">Conversation</th></tr></thead><tbody>{comments}</tbody></table></section>
<p class="muted">Generated {escape(report.generated_at)}.</p>
</main>"""


STYLE = """
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1f; background: #f4f4f5; }
header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px;
  padding: 12px 24px; background: #1e3a8a; color: #fff; }
header h1 { margin: 0; font-size: 20px; }
header a { color: #fff; }
header form { display: inline; margin-left: 8px; }
main { max-width: 1100px; margin: 0 auto; padding: 20px; }
main.narrow { max-width: 380px; margin-top: 10vh; background: #fff; border-radius: 12px; padding: 24px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin-bottom: 16px; }
.card { background: #fff; border-radius: 12px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card span { display: block; color: #52525b; font-size: 13px; }
.card strong { display: block; font-size: 26px; }
.card small { color: #52525b; }
.panel { background: #fff; border-radius: 12px; padding: 12px 16px 16px; margin-bottom: 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.panel h2 { font-size: 16px; margin: 0 0 8px; }
.panel h3 { font-size: 14px; margin: 0 0 6px; color: #52525b; }
.panel .card { box-shadow: 0 0 0 1px #e4e4e7; }
.grid { display: grid; grid-template-columns: 2fr 1fr; gap: 16px; }
.grid svg { max-height: 220px; }
@media (max-width: 700px) { .grid { grid-template-columns: 1fr; } }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e4e4e7; vertical-align: top; }
td:nth-child(3) { white-space: pre-wrap; overflow-wrap: anywhere; }
label { display: block; margin: 12px 0 4px; }
input { width: 100%; box-sizing: border-box; font: inherit; padding: 8px; border: 1px solid #a1a1aa; border-radius: 8px; }
button { font: inherit; margin-top: 12px; padding: 7px 14px; border: none; border-radius: 8px; background: #1d4ed8; color: #fff; cursor: pointer; }
header button { margin: 0; background: rgba(255,255,255,.2); }
.error { color: #991b1b; }
.muted { color: #52525b; font-size: 13px; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
"""


def add_routes(app: web.Application, db: Database, settings: Settings) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app[DASHBOARD] = DashboardConfig(db, token or None)
    app.router.add_get("/admin", dashboard)
    app.router.add_get("/admin/login", login_form)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
    app.router.add_get("/admin/report.json", report_json)
    app.router.add_get(r"/admin/feedback.{fmt:(csv|json)}", export)
