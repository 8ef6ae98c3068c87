"""The JSON HTTP API through aiohttp's test client: the whole flow, tokens, and every bad input."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.http_api import TokenCache
from bot.server import init_app


@pytest.fixture
async def client(tandem):
    async with TestClient(TestServer(init_app(tandem))) as test_client:
        yield test_client


async def open_conversation(client: TestClient, token: str | None = None) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/api/conversations", headers=headers)
    assert response.status == 201
    body = await response.json()
    return body["conversation_id"], body.get("token", token)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_health(client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_a_conversation_end_to_end(client, tandem) -> None:
    conversation, token = await open_conversation(client)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"},
                                 headers=auth(token))
    assert response.status == 200
    reply = await response.json()
    assert reply["skill"] == "help" and "Tandem" in reply["text"] and reply["message_id"]

    response = await client.post(f"/api/messages/{reply['message_id']}/feedback", json={"thumb": "up"},
                                 headers=auth(token))
    assert response.status == 201
    response = await client.post(f"/api/conversations/{conversation}/rating",
                                 json={"rating": 4, "comment": "nice"}, headers=auth(token))
    assert response.status == 201

    stored = await tandem.feedback.for_conversation(conversation)
    assert [(f.kind, f.value, f.comment) for f in stored] == [("thumb", 1, None), ("rating", 4, "nice")]
    history = await (await client.get(f"/api/conversations/{conversation}/messages", headers=auth(token))).json()
    assert [m["author"] for m in history["messages"]] == ["user", "bot"]


async def test_a_token_reaches_only_its_own_conversations(client) -> None:
    ann_conversation, ann = await open_conversation(client)
    bob_conversation, bob = await open_conversation(client)
    reply = await (await client.post(f"/api/conversations/{ann_conversation}/messages", json={"text": "hi"},
                                     headers=auth(ann))).json()
    for method, path, body in [
        ("post", f"/api/conversations/{ann_conversation}/messages", {"text": "hi"}),
        ("get", f"/api/conversations/{ann_conversation}/messages", None),
        ("post", f"/api/conversations/{ann_conversation}/rating", {"rating": 1}),
        ("post", f"/api/messages/{reply['message_id']}/feedback", {"thumb": "down"}),
    ]:
        response = await getattr(client, method)(path, json=body, headers=auth(bob))
        assert response.status == 404, path
    listing = await (await client.get("/api/conversations", headers=auth(bob))).json()
    assert [c["id"] for c in listing["conversations"]] == [bob_conversation]


async def test_the_same_token_opens_more_conversations(client) -> None:
    first, token = await open_conversation(client)
    second, same = await open_conversation(client, token)
    assert same == token and second != first


async def test_missing_or_unknown_token_is_401(client) -> None:
    conversation, _ = await open_conversation(client)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "hi"},
                                     headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"text": ""}', "empty"),
        (b'{"text": "   "}', "empty"),
        (b'{"text": 42}', "only read text"),
        (b'{"txt": "hi"}', "only read text"),
        (b'{"text": "' + b"x" * 4097 + b'"}', "too long"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
    ],
)
async def test_bad_messages_get_400_and_change_nothing(client, tandem, body: bytes, message: str) -> None:
    conversation, token = await open_conversation(client)
    await client.post(f"/api/conversations/{conversation}/messages", json={"text": "hi"}, headers=auth(token))
    before = await tandem.conversations.messages(conversation)
    response = await client.post(f"/api/conversations/{conversation}/messages", data=body,
                                 headers={**auth(token), "Content-Type": "application/json"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert message.lower() in error["message"].lower()
    assert await tandem.conversations.messages(conversation) == before


@pytest.mark.parametrize("rating", [0, 6, -3, 2.5, "5", None, True])
async def test_ratings_outside_1_to_5_are_refused(client, tandem, rating) -> None:
    conversation, token = await open_conversation(client)
    await client.post(f"/api/conversations/{conversation}/rating", json={"rating": 3}, headers=auth(token))
    response = await client.post(f"/api/conversations/{conversation}/rating", json={"rating": rating},
                                 headers=auth(token))
    assert response.status == 400
    assert [f.value for f in await tandem.feedback.for_conversation(conversation)] == [3]


async def test_unknown_ids_are_404(client) -> None:
    _, token = await open_conversation(client)
    for path, body in [
        ("/api/conversations/doesnotexist/messages", {"text": "hi"}),
        ("/api/conversations/doesnotexist/rating", {"rating": 3}),
        ("/api/messages/999999/feedback", {"thumb": "up"}),
        ("/api/messages/notanumber/feedback", {"thumb": "up"}),
    ]:
        response = await client.post(path, json=body, headers=auth(token))
        assert response.status == 404, path
        assert "error" in await response.json()


async def test_thumb_values_are_checked(client) -> None:
    conversation, token = await open_conversation(client)
    reply = await (await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"},
                                     headers=auth(token))).json()
    response = await client.post(f"/api/messages/{reply['message_id']}/feedback", json={"thumb": "sideways"},
                                 headers=auth(token))
    assert response.status == 400
    user_message = reply["user_message_id"]
    response = await client.post(f"/api/messages/{user_message}/feedback", json={"thumb": "up"},
                                 headers=auth(token))
    assert response.status == 400


async def test_oversized_body_is_413_json(client) -> None:
    conversation, token = await open_conversation(client)
    response = await client.post(f"/api/conversations/{conversation}/messages",
                                 data=b'{"text": "' + b"x" * (2 * 1024 * 1024 + 1) + b'"}',
                                 headers={**auth(token), "Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"


async def test_unknown_route_is_json_404(client) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404 and "error" in await response.json()


async def test_streamed_reply_arrives_as_server_sent_events(client) -> None:
    conversation, token = await open_conversation(client)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"},
                                 headers={**auth(token), "Accept": "text/event-stream"})
    assert response.status == 200
    body = (await response.read()).decode()
    assert "event: delta" in body and "event: reply" in body


async def test_an_overloaded_bot_answers_503_busy_and_stores_nothing(client, tandem) -> None:
    conversation, token = await open_conversation(client)
    dispatcher = tandem.dispatcher
    dispatcher.admission.max_total = 1
    dispatcher.admission.in_flight += 1  # one turn "in flight"
    try:
        response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": "help"},
                                     headers=auth(token))
        assert response.status == 503 and response.headers["Retry-After"] == "5"
        assert (await response.json())["error"]["code"] == "busy"
        assert await tandem.conversations.messages(conversation) == []
    finally:
        dispatcher.admission.in_flight -= 1


async def test_story_actions_pass_the_same_admission_as_chat_turns(client, tandem) -> None:
    _, token = await open_conversation(client)
    user = await tandem.conversations.user_by_token(token)
    admission = tandem.dispatcher.admission
    admission.max_per_user = 1
    admission.try_enter(("user", str(user)))  # this user's one turn is "in flight" (a chat turn, say)
    try:
        refused = await client.post("/api/stories", json={"text": "A fox."}, headers=auth(token))
        assert refused.status == 503 and (await refused.json())["error"]["code"] == "busy"
        assert refused.headers["Retry-After"] == "5"
        assert (await (await client.get("/api/stories", headers=auth(token))).json())["stories"] == []
    finally:
        admission.leave(("user", str(user)))
    started = await client.post("/api/stories", json={"text": "A fox."}, headers=auth(token))
    assert started.status == 201 and admission.in_flight == 0


# --- the turn path's token cache ------------------------------------------------------------------

def test_the_token_cache_forgets_after_its_ttl_and_beyond_its_size() -> None:
    now = [0.0]
    cache = TokenCache(ttl_s=30, max_entries=2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 30.0
    assert cache.get("a") is None and len(cache) == 0  # "a" and "c" both expired at 30
    cache.put("d", 4)
    cache.forget_user(4)
    assert cache.get("d") is None


async def test_turns_look_a_token_up_once_and_deleting_my_data_refuses_it_at_once(client, tandem,
                                                                                 monkeypatch) -> None:
    conversation, token = await open_conversation(client)
    lookups = []
    user_by_token = tandem.conversations.user_by_token

    async def counted(value: str):
        lookups.append(value)
        return await user_by_token(value)

    monkeypatch.setattr(tandem.conversations, "user_by_token", counted)
    url = f"/api/conversations/{conversation}/messages"
    for _ in range(3):
        assert (await client.post(url, json={"text": "help"}, headers=auth(token))).status == 200
    assert lookups == [token]
    assert (await client.delete("/api/me?confirm=true", headers=auth(token))).status == 204
    response = await client.post(url, json={"text": "help"}, headers=auth(token))
    assert response.status == 401 and (await response.json())["error"]["code"] == "unauthorized"


async def test_a_remembered_token_of_a_user_deleted_elsewhere_reaches_nothing(client, tandem) -> None:
    conversation, token = await open_conversation(client)
    url = f"/api/conversations/{conversation}/messages"
    assert (await client.post(url, json={"text": "help"}, headers=auth(token))).status == 200
    # Deleted by another process: this one still remembers the token, and the turn refuses it.
    await tandem.conversations.delete_user(await tandem.conversations.user_by_token(token))
    response = await client.post(url, json={"text": "help"}, headers=auth(token))
    assert response.status == 404
    assert await tandem.conversations.messages(conversation) == []
    # Everything else looks the token up afresh.
    assert (await client.get("/api/conversations", headers=auth(token))).status == 401


async def test_small_talk_streams_as_several_server_sent_events(settings) -> None:
    from bot.app import build_app
    from bot.models.fake import FakeLanguageModel
    from bot.server import init_app

    model = FakeLanguageModel("I'm doing well, thank you for asking. What about you?", delay_s=0.01)
    app = await build_app(settings, language_model=model)
    try:
        async with TestClient(TestServer(init_app(app))) as client:
            conversation, token = await open_conversation(client)
            response = await client.post(f"/api/conversations/{conversation}/messages",
                                         json={"text": "how are you?"},
                                         headers={**auth(token), "Accept": "text/event-stream"})
            body = (await response.read()).decode()
            assert body.count("event: delta") >= 3 and "smalltalk" in body
    finally:
        await app.close()
