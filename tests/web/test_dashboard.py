"""The /admin dashboard over HTTP: the token guard (bearer and cookie), the page, the exports."""

from __future__ import annotations

import csv
import io

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.server import init_app
from bot.storage.stories import NewPassage, StoryRepo

TOKEN = "s3cret-admin"


@pytest.fixture
async def client(tandem):
    tandem.settings.admin_token = SecretStr(TOKEN)
    async with TestClient(TestServer(init_app(tandem))) as test_client:
        yield test_client


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
