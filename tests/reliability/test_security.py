"""Security end to end over HTTP and WebSocket: each session reaches only its own data, the admin
pages need the token, origins and sizes are checked, rate limits say "slow down", secrets stay out
of the logs, and deleting my data deletes all of it (and nothing of anyone else's)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import build_app
from bot.models.fake import FakeLanguageModel
from bot.server import init_app
from bot.settings import load_settings
from bot.storage.schema import (
    Conversation, DialogStateRow, Feedback, FeedbackOffer, LoreEntry, Message, Passage, Story, User,
)

ADMIN = "admin-token-for-the-security-tests"


@pytest.fixture
async def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Start a Tandem web app with extra TANDEM_* settings; yields (client, tandem)."""
    opened: list = []

    async def start(**env: str):
        for key, value in {"TANDEM_DATA_DIR": str(tmp_path / "data"), "TANDEM_ADMIN_TOKEN": ADMIN, **env}.items():
            monkeypatch.setenv(key, value)
        tandem = await build_app(load_settings(), language_model=FakeLanguageModel("The owl flew over the hill."))
        client = TestClient(TestServer(init_app(tandem)))
        await client.start_server()
        opened.append((client, tandem))
        return client, tandem

    yield start
    for client, tandem in opened:
        await client.close()
        await tandem.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_session(client: TestClient) -> tuple[str, str]:
    body = await (await client.post("/api/conversations")).json()
    return body["conversation_id"], body["token"]


async def chat(client: TestClient, conversation: str, token: str, text: str) -> dict:
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": text},
                                 headers=bearer(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def count(tandem, table, *where) -> int:
    async with tandem.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(table).where(*where)) or 0


async def snapshot(tandem) -> dict[str, int]:
    tables = (User, Conversation, Message, Feedback, FeedbackOffer, DialogStateRow, Story, Passage, LoreEntry)
    return {table.__tablename__: await count(tandem, table) for table in tables}


async def user_of(tandem, token: str) -> int:
    user_id = await tandem.conversations.user_by_token(token)
    assert user_id is not None
    return user_id


async def everything_of(tandem, user_id: int) -> dict[str, int]:
    """Rows that belong to `user_id`, table by table."""
    conversations = select(Conversation.id).where(Conversation.user_id == user_id)
    stories = select(Story.id).where(Story.user_id == user_id)
    return {
        "users": await count(tandem, User, User.id == user_id),
        "conversations": await count(tandem, Conversation, Conversation.user_id == user_id),
        "messages": await count(tandem, Message, Message.conversation_id.in_(conversations)),
        "feedback": await count(tandem, Feedback, Feedback.user_id == user_id),
        "offers": await count(tandem, FeedbackOffer, FeedbackOffer.conversation_id.in_(conversations)),
        "dialog_states": await count(tandem, DialogStateRow, DialogStateRow.conversation_id.in_(conversations)),
        "stories": await count(tandem, Story, Story.user_id == user_id),
        "passages": await count(tandem, Passage, Passage.story_id.in_(stories)),
        "lore": await count(tandem, LoreEntry, LoreEntry.story_id.in_(stories)),
    }


async def fill_with_data(client: TestClient, token: str, conversation: str, tandem) -> int:
    """A user with messages, a thumb, a rating, an offer and a story with a passage and lore; returns the story id."""
    reply = await chat(client, conversation, token, "help")
    assert (await client.post(f"/api/messages/{reply['message_id']}/feedback", json={"thumb": "up"},
                              headers=bearer(token))).status == 201
    assert (await client.post(f"/api/conversations/{conversation}/rating", json={"rating": 5, "comment": "great"},
                              headers=bearer(token))).status == 201
    story = (await (await client.post("/api/stories", json={"title": "Owls", "text": "An owl woke up."},
                                      headers=bearer(token))).json())["story"]
    assert (await client.post(f"/api/stories/{story['id']}/lore", json={"keys": ["owl"], "text": "Owls hoot."},
                              headers=bearer(token))).status == 201
    await tandem.feedback.add_offer(conversation, "rating", "api")
    return story["id"]


# --- each session reaches only its own data ------------------------------------------------------

async def test_one_session_can_neither_read_nor_change_anothers_data(make_client) -> None:
    client, tandem = await make_client()
    ann_conversation, ann = await new_session(client)
    story_id = await fill_with_data(client, ann, ann_conversation, tandem)
    ann_reply = (await (await client.get(f"/api/conversations/{ann_conversation}/messages",
                                         headers=bearer(ann))).json())["messages"][-1]
    _, bob = await new_session(client)
    before = await snapshot(tandem)
    attempts = [
        ("GET", f"/api/conversations/{ann_conversation}/messages", None),
        ("POST", f"/api/conversations/{ann_conversation}/messages", {"text": "hi"}),
        ("POST", f"/api/conversations/{ann_conversation}/rating", {"rating": 1}),
        ("POST", f"/api/messages/{ann_reply['id']}/feedback", {"thumb": "down"}),
        ("GET", f"/api/stories/{story_id}", None),
        ("PATCH", f"/api/stories/{story_id}", {"title": "Mine now"}),
        ("DELETE", f"/api/stories/{story_id}?confirm=true", None),
        ("POST", f"/api/stories/{story_id}/continue", {}),
        ("POST", f"/api/stories/{story_id}/passages", {"text": "Bob was here."}),
        ("POST", f"/api/stories/{story_id}/undo", None),
        ("GET", f"/api/stories/{story_id}/export?format=json", None),
        ("GET", f"/api/stories/{story_id}/lore", None),
        ("PATCH", f"/api/stories/{story_id}/settings", {"temperature": 0.1}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=bearer(bob))
        assert response.status == 404, (method, path, response.status)
        assert "owl" not in (await response.text()).lower(), (method, path)
    # Bob's lists show nothing of Ann's.
    assert (await (await client.get("/api/stories", headers=bearer(bob))).json())["stories"] == []
    listed = (await (await client.get("/api/conversations", headers=bearer(bob))).json())["conversations"]
    assert ann_conversation not in str(listed)
    assert await snapshot(tandem) == before
    # And without any token, or with a made-up one, nothing at all.
    for headers in ({}, bearer("made-up-token")):
        response = await client.get(f"/api/conversations/{ann_conversation}/messages", headers=headers)
        assert response.status == 401


async def test_a_websocket_session_cannot_resume_or_rate_anothers_conversation(make_client) -> None:
    client, tandem = await make_client()
    ann_conversation, ann = await new_session(client)
    ann_reply = await chat(client, ann_conversation, ann, "help")
    before = await snapshot(tandem)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello", "conversation_id": ann_conversation})
        welcome = await ws.receive_json()
        assert welcome["type"] == "welcome" and welcome["conversation_id"] != ann_conversation
        assert welcome["messages"] == []
        await ws.send_json({"type": "thumb", "message_id": ann_reply["message_id"], "value": "down"})
        answer = await ws.receive_json()
        assert answer["type"] == "error" and answer["code"] == "not_found"
    after = await snapshot(tandem)
    # Only Bob's new anonymous user, its conversation and its dialog state were added.
    assert {k: after[k] - before[k] for k in after} == {**{k: 0 for k in after}, "users": 1, "conversations": 1,
                                                         "dialog_states": 1}
    assert await count(tandem, Feedback, Feedback.message_id == ann_reply["message_id"]) == 0


# --- the dashboard ---------------------------------------------------------------------------------

async def test_the_dashboard_and_exports_need_the_admin_token(make_client) -> None:
    client, tandem = await make_client()
    conversation, token = await new_session(client)
    await fill_with_data(client, token, conversation, tandem)
    for path in ("/admin/report.json", "/admin/feedback.csv", "/admin/feedback.json"):
        for headers in ({}, bearer("wrong"), bearer(ADMIN[:-1]), {"Cookie": "tandem_admin=forged"}):
            response = await client.get(path, headers=headers)
            body = await response.text()
            assert response.status == 401, (path, headers)
            assert "great" not in body and "help" not in body.lower().replace("help)", "")
        response = await client.get(path, headers=bearer(ADMIN))
        assert response.status == 200 and "great" in await response.text()
    page = await client.get("/admin", headers=bearer("wrong"), allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/admin/login"
    assert (await client.get("/admin", headers=bearer(ADMIN))).status == 200


async def test_without_an_admin_token_the_dashboard_is_off(make_client) -> None:
    client, _ = await make_client(TANDEM_ADMIN_TOKEN="")
    for path in ("/admin/report.json", "/admin/feedback.csv"):
        response = await client.get(path, headers=bearer(""))
        assert response.status == 503
    login = await client.post("/admin/login", data={"token": ""}, allow_redirects=False)
    assert login.status == 503 and "Set-Cookie" not in login.headers


# --- origins and sizes -----------------------------------------------------------------------------

async def test_only_configured_origins_may_open_the_socket_or_call_the_api(make_client) -> None:
    client, _ = await make_client(TANDEM_SERVER__ALLOWED_ORIGINS='["https://friend.example"]')
    response = await client.get("/ws", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 403
    async with client.ws_connect("/ws", headers={"Origin": "https://friend.example"}) as ws:
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json())["type"] == "pong"
    preflight = {"Access-Control-Request-Method": "POST"}
    refused = await client.options("/api/conversations", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status == 403
    allowed = await client.options("/api/conversations", headers={"Origin": "https://friend.example", **preflight})
    assert allowed.status == 204 and allowed.headers["Access-Control-Allow-Origin"] == "https://friend.example"
    answer = await client.post("/api/conversations", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer.headers  # the browser keeps the answer from the page


async def test_oversized_bodies_and_frames_are_refused_and_the_server_goes_on(make_client) -> None:
    client, tandem = await make_client(TANDEM_SERVER__MAX_BODY_BYTES="4096", TANDEM_SERVER__MAX_WS_MESSAGE_BYTES="2048")
    conversation, token = await new_session(client)
    response = await client.post(f"/api/conversations/{conversation}/messages", data='{"text": "' + "a" * 8000 + '"}',
                                 headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello", "token": token})
        assert (await ws.receive_json())["type"] == "welcome"
        before = await snapshot(tandem)
        await ws.send_str('{"type": "message", "client_id": "big", "text": "' + "b" * 4000 + '"}')
        closing = await ws.receive()
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert await snapshot(tandem) == before
    assert await count(tandem, Message) == 0
    assert (await chat(client, conversation, token, "help"))["skill"] == "help"


# --- rate limits -----------------------------------------------------------------------------------

async def test_too_many_turns_from_one_user_get_a_clear_slow_down(make_client) -> None:
    client, tandem = await make_client(TANDEM_SERVER__RATE_LIMIT_PER_USER__PER_MINUTE="6",
                                       TANDEM_SERVER__RATE_LIMIT_PER_USER__BURST="3")
    conversation, token = await new_session(client)
    for _ in range(3):
        await chat(client, conversation, token, "help")
    stored = await count(tandem, Message)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"},
                                 headers=bearer(token))
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    error = (await response.json())["error"]
    assert error["code"] == "rate_limited" and "slow down" in error["message"].lower()
    assert await count(tandem, Message) == stored  # nothing of the refused turn was stored
    # Story generations count too; another user is not slowed by this one.
    story = await client.post("/api/stories", json={"title": "x"}, headers=bearer(token))
    assert story.status == 429
    other_conversation, other = await new_session(client)
    assert (await chat(client, other_conversation, other, "help"))["skill"] == "help"


async def test_too_many_requests_from_one_address_get_429_and_forwarded_for_is_trusted_only_when_set(
        make_client) -> None:
    client, _ = await make_client(TANDEM_SERVER__RATE_LIMIT_PER_IP__PER_MINUTE="6",
                                  TANDEM_SERVER__RATE_LIMIT_PER_IP__BURST="4")
    statuses = [(await client.post("/api/conversations", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status
                for i in range(6)]
    # Not behind a trusted proxy: the header is ignored, every request is the same address.
    assert statuses == [201] * 4 + [429] * 2
    assert (await client.get("/healthz")).status == 200  # health and pages are not limited
    login = await client.post("/admin/login", data={"token": "guess"})
    assert login.status == 429  # nor can the admin token be guessed at speed

    proxied, _ = await make_client(TANDEM_SERVER__RATE_LIMIT_PER_IP__PER_MINUTE="6",
                                   TANDEM_SERVER__RATE_LIMIT_PER_IP__BURST="4",
                                   TANDEM_SERVER__TRUST_FORWARDED_FOR="true")
    statuses = [(await proxied.post("/api/conversations", headers={"X-Forwarded-For": f"10.0.0.{i % 3}"})).status
                for i in range(9)]
    assert statuses == [201] * 9  # three clients behind the proxy, three requests each


async def test_a_flooding_socket_is_told_to_slow_down_and_nothing_is_stored(make_client, caplog) -> None:
    from bot.channels import websocket

    caplog.set_level(logging.INFO, logger="bot.channels.websocket")
    websocket.RATE_LIMIT_LOG._causes.clear()  # another test's client may share this one's address
    client, tandem = await make_client(TANDEM_SERVER__RATE_LIMIT_PER_USER__PER_MINUTE="6",
                                       TANDEM_SERVER__RATE_LIMIT_PER_USER__BURST="2")
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello"})
        assert (await ws.receive_json())["type"] == "welcome"
        for n in range(12):
            await ws.send_json({"type": "message", "client_id": f"m{n}", "text": "help"})
        frames: list[dict] = []
        while sum(f["type"] in ("reply", "error") for f in frames) < 12:
            frames.append(await ws.receive_json())
    limited = [f for f in frames if f["type"] == "error"]
    assert [f["client_id"] for f in limited] == [f"m{n}" for n in range(2, 12)]
    # Ten frames refused, one log line: a flood of frames is no flood of log lines.
    assert sum("ws rate limited" in r.getMessage() for r in caplog.records) == 1
    assert all(f["code"] == "rate_limited" and "slow down" in f["message"].lower() for f in limited)
    assert sorted(f["client_id"] for f in frames if f["type"] == "ack") == ["m0", "m1"]
    assert await count(tandem, Message, Message.author == "user") == 2


# --- secrets ---------------------------------------------------------------------------------------

async def test_secrets_never_reach_the_logs(make_client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token, api_key = "123456:ABC-secret-telegram-token", "sk-secret-api-key-42"
    await make_client(TANDEM_TELEGRAM_WEBHOOK_SECRET="webhook-secret-value", TANDEM_LM__API_KEY=api_key)
    # What libraries do: httpx logs request URLs, drivers quote what failed, tracebacks carry arguments.
    from bot import redaction

    redaction.protect([token])
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates", token)
    logging.getLogger("tandem.test").warning("login refused for %s", ADMIN)
    try:
        raise RuntimeError(f"upstream refused key {api_key}")
    except RuntimeError:
        logging.getLogger("tandem.test").exception("model call failed")
    text = caplog.text + "".join(logging.Formatter().format(r) for r in caplog.records)
    for secret in (token, ADMIN, api_key, "webhook-secret-value"):
        assert secret not in text
    assert text.count(redaction.MASK) >= 4


def test_a_database_password_is_not_shown_when_the_server_cannot_be_reached(tmp_path, subprocess_env) -> None:
    env = {**subprocess_env, "TANDEM_DATA_DIR": str(tmp_path / "data"),
           "TANDEM_DATABASE_URL": "postgresql+asyncpg://tandem:hunter2-db-password@127.0.0.1:9/tandem"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "migrate"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert "hunter2-db-password" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# --- deleting my data ------------------------------------------------------------------------------

async def test_deleting_my_data_over_http_deletes_all_of_it_and_nothing_else(make_client) -> None:
    client, tandem = await make_client()
    ann_conversation, ann = await new_session(client)
    bob_conversation, bob = await new_session(client)
    for token, conversation in ((ann, ann_conversation), (bob, bob_conversation)):
        await fill_with_data(client, token, conversation, tandem)
    ann_id, bob_id = await user_of(tandem, ann), await user_of(tandem, bob)
    bob_before = await everything_of(tandem, bob_id)
    assert all(await everything_of(tandem, ann_id)) and all(bob_before.values())

    asked = await client.delete("/api/me", headers=bearer(ann))
    assert asked.status == 409 and "confirm=true" in (await asked.json())["error"]["message"]
    assert all((await everything_of(tandem, ann_id)).values())  # nothing deleted without the confirmation

    assert (await client.delete("/api/me?confirm=true", headers=bearer(ann))).status == 204
    assert set((await everything_of(tandem, ann_id)).values()) == {0}
    assert await everything_of(tandem, bob_id) == bob_before
    assert (await client.get("/api/conversations", headers=bearer(ann))).status == 401
    assert (await client.delete("/api/me?confirm=true", headers=bearer(ann))).status == 401


async def test_deleting_my_data_over_the_socket_deletes_all_of_it_and_starts_afresh(make_client) -> None:
    client, tandem = await make_client()
    conversation, token = await new_session(client)
    await fill_with_data(client, token, conversation, tandem)
    user_id = await user_of(tandem, token)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello", "token": token})
        assert (await ws.receive_json())["type"] == "welcome"
        await ws.send_json({"type": "delete_my_data"})
        assert (await ws.receive_json())["code"] == "confirmation_required"
        assert all((await everything_of(tandem, user_id)).values())
        await ws.send_json({"type": "delete_my_data", "confirm": True})
        assert (await ws.receive_json())["type"] == "deleted"
        assert (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert set((await everything_of(tandem, user_id)).values()) == {0}
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "hello", "token": token})
        welcome = await ws.receive_json()
        assert welcome["resumed"] is False and welcome["messages"] == [] and welcome["token"] != token
