"""The /admin dashboard over HTTP: the token guard (bearer and session cookie), sign-in sessions
(expiry, sign-out, revocation, several workers), the page and its escaping, the exports."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import select, update

from bot.cli import main
from bot.core.state import DialogState
from bot.server import init_app
from bot.storage.conversations import NewMessage
from bot.storage.database import Database
from bot.storage.schema import AdminSession
from bot.storage.stories import NewPassage, StoryRepo
from bot.web import dashboard

TOKEN = "s3cret-admin"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def admin_client(app: web.Application) -> TestClient:
    """A client that sends only the cookies a test gives it (no jar)."""
    return TestClient(TestServer(app), cookie_jar=DummyCookieJar())


@pytest.fixture
async def client(tandem):
    tandem.settings.admin_token = SecretStr(TOKEN)
    async with admin_client(init_app(tandem)) as test_client:
        yield test_client


async def sign_in(client: TestClient) -> str:
    response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin"
    return response.cookies["tandem_admin"].value


async def opens_the_dashboard(client: TestClient, cookie: str) -> bool:
    """Whether `cookie` opens the page and the JSON report; a refused one gets the login form and 401."""
    headers = {"Cookie": f"tandem_admin={cookie}"}
    page = await client.get("/admin", headers=headers, allow_redirects=False)
    report = await client.get("/admin/report.json", headers=headers)
    if page.status == 200:
        assert report.status == 200 and "Tandem feedback" in await page.text()
        return True
    assert (page.status, page.headers["Location"], report.status) == (303, "/admin/login", 401)
    return False


async def feedback_data(tandem) -> str:
    user_id, _ = await tandem.conversations.create_token_user("web")
    conversation = await tandem.conversations.open_conversation(user_id, "web")
    await tandem.feedback.add_rating(conversation, user_id, 3, "<script>alert(1)</script>", "web")
    return conversation


async def test_everything_needs_the_token(client) -> None:
    for path in ("/admin/report.json", "/admin/feedback.csv", "/admin/feedback.json"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    response = await client.get("/admin", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/login"


async def test_the_login_form_sets_an_httponly_cookie_that_opens_the_dashboard(client, tandem) -> None:
    await feedback_data(tandem)
    refused = await client.post("/admin/login", data={"token": "nope"}, allow_redirects=False)
    assert refused.status == 401 and "not right" in await refused.text()
    response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303
    cookie = response.cookies["tandem_admin"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie.value != TOKEN
    page = await client.get("/admin", cookies={"tandem_admin": cookie.value})
    html = await page.text()
    assert page.status == 200 and html.count("<svg") >= 5 and "Average rating" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


async def test_the_stories_panel_shows_the_story_numbers(client, tandem) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    empty = await (await client.get("/admin", headers=auth)).text()
    assert "<h2>Stories</h2><p>No stories yet.</p>" in empty
    assert (await (await client.get("/admin/report.json", headers=auth)).json())["stories"]["stories"] == 0
    stories = StoryRepo(tandem.db)
    user_id, _ = await tandem.conversations.create_token_user("web")
    story = (await stories.create_story(user_id, "Night")).id
    _, (opening,) = await stories.add_passages(user_id, story, [NewPassage("user", "Once")])
    _, (kept, _cut) = await stories.add_passages(user_id, story, [
        NewPassage("model", "upon", parent_id=opening.id, candidate=True),
        NewPassage("model", "up", parent_id=opening.id, candidate=True, status="incomplete")])
    await stories.move_cursor(user_id, story, kept.id, {}, chosen_id=kept.id)
    await stories.rate_passage(user_id, story, kept.id, 1)
    page = await client.get("/admin?days=7", headers=auth)
    html = await page.text()
    assert page.status == 200 and "No stories yet" not in html
    panel = html[html.index("<h2>Stories</h2>"):html.index("<h2>Latest comments</h2>")]
    assert "<span>Stories</span><strong>1</strong><small>1 started in the last 7 days</small>" in panel
    assert "<strong>3</strong><small>1 user, 2 model, 0 edited, last 7 days</small>" in panel
    assert "<span>Incomplete</span><strong>1</strong><small>of 2 model passages</small>" in panel
    assert "<span>Alternatives chosen</span><strong>50%</strong><small>1 of 2 candidates</small>" in panel
    assert "<span>Passage thumbs up</span><strong>100%</strong><small>1 up, 0 down, all time</small>" in panel
    assert panel.count("<svg") == 2 and "<script" not in panel
    report = await (await client.get("/admin/report.json?days=7", headers=auth)).json()
    assert report["stories"]["passages_model"] == 2
    assert (report["stories"]["candidate_choice_rate"], report["stories"]["thumbs_up_ratio"]) == (0.5, 1.0)


async def test_exports_carry_the_feedback(client, tandem) -> None:
    conversation = await feedback_data(tandem)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rows = list(csv.DictReader(io.StringIO(await (await client.get("/admin/feedback.csv", headers=auth)).text())))
    assert [(r["kind"], r["value"], r["conversation_id"]) for r in rows] == [("rating", "3", conversation)]
    data = await (await client.get("/admin/feedback.json", headers=auth)).json()
    assert data["feedback"][0]["comment"] == "<script>alert(1)</script>"
    report = await (await client.get("/admin/report.json?days=7", headers=auth)).json()
    assert report["rating_average"] == 3 and len(report["by_day"]) == 7


async def test_without_an_admin_token_the_dashboard_is_off(tandem) -> None:
    async with TestClient(TestServer(init_app(tandem))) as client:
        page = await client.get("/admin/login")
        assert page.status == 503 and "TANDEM_ADMIN_TOKEN" in await page.text()
        assert (await client.get("/admin/report.json", headers={"Authorization": "Bearer "})).status == 503
        login = await client.post("/admin/login", data={"token": ""}, allow_redirects=False)
        assert login.status == 503


async def test_the_demo_page_and_widget_files_are_served(tandem) -> None:
    async with TestClient(TestServer(init_app(tandem))) as client:
        page = await client.get("/")
        assert page.status == 200 and 'src="/widget.js"' in await page.text()
        for name, kind in (("widget.js", "text/javascript"), ("widget-story.js", "text/javascript"),
                           ("sse-reader.js", "text/javascript"), ("widget.css", "text/css")):
            response = await client.get(f"/{name}")
            assert response.status == 200 and response.content_type == kind
        assert (await client.get("/static/../bot/settings.py")).status == 404


# --- sign-in sessions ------------------------------------------------------------------------------

async def stored_sessions(db: Database) -> list[AdminSession]:
    async with db.transaction() as session:
        return list(await session.scalars(select(AdminSession)))


async def test_each_login_gets_its_own_session_stored_only_as_a_hash(client, tandem) -> None:
    response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    cookie = response.cookies["tandem_admin"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin"
    assert cookie["max-age"] == str(8 * 3600)
    second = await sign_in(client)
    assert cookie.value != second and TOKEN not in (cookie.value, second)
    assert await opens_the_dashboard(client, cookie.value) and await opens_the_dashboard(client, second)
    rows = await stored_sessions(tandem.db)
    assert sorted(row.id for row in rows) == sorted(hashlib.sha256(v.encode()).hexdigest()
                                                    for v in (cookie.value, second))
    assert {row.client for row in rows} == {"127.0.0.1"}


async def test_forged_random_and_empty_cookies_get_the_login_page(client, tandem) -> None:
    real = await sign_in(client)
    stolen_hash = hashlib.sha256(real.encode()).hexdigest()  # what a copy of the table would give
    for cookie in ("", "forged", secrets.token_urlsafe(32), stolen_hash, real[:-1] + "~", SCRIPT):
        assert not await opens_the_dashboard(client, cookie), cookie
    login = await client.get("/admin/login", headers={"Cookie": "tandem_admin=forged"})
    assert login.status == 200 and 'name="token"' in await login.text()
    assert await opens_the_dashboard(client, real)


async def test_sign_out_revokes_the_session(client, tandem) -> None:
    cookie, other = await sign_in(client), await sign_in(client)
    response = await client.post("/admin/logout", headers={"Cookie": f"tandem_admin={cookie}"},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/login"
    assert response.cookies["tandem_admin"].value == ""  # the browser forgets it too
    assert not await opens_the_dashboard(client, cookie)  # a copy kept elsewhere opens nothing either
    assert await opens_the_dashboard(client, other)
    [row] = [r for r in await stored_sessions(tandem.db) if r.id == hashlib.sha256(cookie.encode()).hexdigest()]
    assert row.revoked_at is not None


async def test_signing_in_again_replaces_the_browsers_session(client, tandem) -> None:
    first = await sign_in(client)
    again = await client.post("/admin/login", data={"token": TOKEN}, headers={"Cookie": f"tandem_admin={first}"},
                              allow_redirects=False)
    second = again.cookies["tandem_admin"].value
    assert second != first and await opens_the_dashboard(client, second)
    assert not await opens_the_dashboard(client, first)


async def test_a_session_ends_when_it_expires(tandem) -> None:
    tandem.settings.admin_token = SecretStr(TOKEN)
    tandem.settings.admin_session_hours = 0.5
    async with admin_client(init_app(tandem)) as client:
        response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
        assert response.cookies["tandem_admin"]["max-age"] == "1800"
        cookie = response.cookies["tandem_admin"].value
        [row] = await stored_sessions(tandem.db)
        assert row.expires_at - row.created_at == timedelta(minutes=30)
        assert await opens_the_dashboard(client, cookie)
        async with tandem.db.transaction() as session:  # half an hour later
            await session.execute(update(AdminSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert not await opens_the_dashboard(client, cookie)
        fresh = await sign_in(client)  # a login forgets the sessions no cookie can open
        assert [r.id for r in await stored_sessions(tandem.db)] == [hashlib.sha256(fresh.encode()).hexdigest()]


def tandem_admin(*args: str):
    return CliRunner().invoke(main, ["admin", *args])


async def test_tandem_admin_lists_and_revokes_sessions(client, tandem) -> None:
    first, second, third = [await sign_in(client) for _ in range(3)]
    listed = await asyncio.to_thread(tandem_admin, "sessions")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["id", "created", "expires", "client"] and len(lines) == 4
    assert all(line.endswith("127.0.0.1") and " UTC " in line for line in lines[1:])
    first_id = hashlib.sha256(first.encode()).hexdigest()
    assert any(line.startswith(first_id[:12]) for line in lines[1:])

    one = await asyncio.to_thread(tandem_admin, "revoke", first_id[:8])
    assert one.exit_code == 0 and "revoked 1 admin session" in one.output, one.output
    assert not await opens_the_dashboard(client, first) and await opens_the_dashboard(client, second)
    unknown = await asyncio.to_thread(tandem_admin, "revoke", first_id[:8])  # no longer active
    assert unknown.exit_code == 2 and "no active admin session" in unknown.output

    everyone = await asyncio.to_thread(tandem_admin, "revoke")
    assert everyone.exit_code == 0 and "revoked 2 admin sessions" in everyone.output, everyone.output
    assert not await opens_the_dashboard(client, second) and not await opens_the_dashboard(client, third)
    none_left = await asyncio.to_thread(tandem_admin, "sessions")
    assert none_left.exit_code == 0 and "no active admin sessions" in none_left.output


async def test_revoke_refuses_a_prefix_that_names_no_session_or_several(client, tandem) -> None:
    await sign_in(client)
    await sign_in(client)
    async with tandem.db.transaction() as session:  # ids with a common start, as a long list would have
        for id_ in list(await session.scalars(select(AdminSession.id))):
            await session.execute(update(AdminSession).where(AdminSession.id == id_).values(id="abc" + id_[3:]))
    several = await asyncio.to_thread(tandem_admin, "revoke", "ABC")
    assert several.exit_code == 2 and "2 active admin sessions" in several.output, several.output
    for prefix in ("", "zzz"):
        unknown = await asyncio.to_thread(tandem_admin, "revoke", prefix)
        assert unknown.exit_code == 2 and "no active admin session" in unknown.output, prefix
    assert [row.revoked_at for row in await stored_sessions(tandem.db)] == [None, None]


@pytest.fixture
async def two_workers(database_url: str, settings):
    """Two dashboard apps, each with its own engine, over one database: two workers of `tandem run`."""
    settings.admin_token = SecretStr(TOKEN)
    databases = [Database(database_url) for _ in range(2)]
    await databases[0].migrate()
    clients = []
    try:
        for db in databases:
            app = web.Application()
            dashboard.add_routes(app, db, settings)
            clients.append(admin_client(app))
            await clients[-1].start_server()
        yield clients
    finally:
        for test_client in clients:
            await test_client.close()
        for db in databases:
            await db.close()


async def test_a_session_works_on_every_worker_sharing_the_database(two_workers) -> None:
    one, two = two_workers
    cookie = await sign_in(one)
    assert await opens_the_dashboard(two, cookie)
    await two.post("/admin/logout", headers={"Cookie": f"tandem_admin={cookie}"}, allow_redirects=False)
    assert not await opens_the_dashboard(one, cookie)
    assert not await opens_the_dashboard(two, cookie)


# --- escaping --------------------------------------------------------------------------------------

async def test_hostile_comments_and_skill_and_node_names_are_escaped(client, tandem) -> None:
    conversations = tandem.conversations
    user_id, _ = await conversations.create_token_user("web")
    conversation = await conversations.open_conversation(user_id, "web")
    for skill, flow, node in ((SCRIPT, IMG, SCRIPT), (IMG, "flow", IMG)):
        await conversations.add_user_message(conversation, NewMessage("user", "hi"))
        message = await conversations.finish_turn(conversation, NewMessage("bot", "hello", skill=skill, flow=flow,
                                                                           node=node), DialogState())
        await tandem.feedback.add_thumb(message, user_id, up=True)
    await tandem.feedback.add_comment(conversation, user_id, IMG)
    await tandem.feedback.add_rating(conversation, user_id, 4, SCRIPT)
    page = await client.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"})
    html = await page.text()
    assert page.status == 200
    assert "<script" not in html and "<img" not in html and "onerror=alert(1)>" not in html
    escaped_script, escaped_img = "&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
    comments = html[html.index("<h2>Latest comments</h2>"):]
    assert f"<td>{escaped_script}</td>" in comments and f"<td>{escaped_img}</td>" in comments
    by_skill = html[html.index("<h2>Thumbs up by skill</h2>"):html.index("<h2>Thumbs up by dialog graph node</h2>")]
    assert f"<title>{escaped_script}</title>" in by_skill and f"<title>{escaped_img}</title>" in by_skill
    by_node = html[html.index("<h2>Thumbs up by dialog graph node</h2>"):html.index("<h2>Stories</h2>")]
    assert f"<title>{escaped_img}/{escaped_script}</title>" in by_node
    assert f"<title>flow/{escaped_img}</title>" in by_node
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_the_login_form_escapes_what_it_shows(client) -> None:
    page = dashboard.templates().get_template("login.html").render(title=IMG, error=SCRIPT)
    assert "<script" not in page and "<img" not in page
    assert "<title>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</title>" in page
    assert '<p class="error" role="alert">&lt;script&gt;alert(1)&lt;/script&gt;</p>' in page
    refused = await client.post("/admin/login", data={"token": SCRIPT}, allow_redirects=False)
    assert refused.status == 401 and SCRIPT not in await refused.text()
    for header, value in dashboard.SECURITY_HEADERS.items():
        assert refused.headers[header] == value
