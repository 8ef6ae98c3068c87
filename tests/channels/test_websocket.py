"""The widget's WebSocket protocol through aiohttp's test client: sessions, acks, de-duplication,
resume with the transcript, stop, feedback, isolation between sessions, and the Origin check."""

from __future__ import annotations

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import build_app
from bot.channels.websocket import ClientLedger, _Sent
from bot.models.fake import FakeLanguageModel
from bot.server import init_app
from bot.storage.schema import Feedback, FeedbackOffer, Message


@pytest.fixture
async def client(tandem):
    async with TestClient(TestServer(init_app(tandem))) as test_client:
        yield test_client


async def hello(client: TestClient, **fields):
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", **fields})
    welcome = await ws.receive_json(timeout=10)
    assert welcome["type"] == "welcome"
    return ws, welcome


async def until(ws, kind: str) -> tuple[dict, list[dict]]:
    """Frames up to and including the first of `kind`."""
    seen = []
    while True:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame)
        if frame["type"] == kind:
            return frame, seen


async def count(tandem, model, *where) -> int:
    async with tandem.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_a_message_is_acknowledged_streamed_and_answered(client) -> None:
    ws, welcome = await hello(client)
    assert welcome["token"] and welcome["messages"] == [] and welcome["resumed"] is False
    await ws.send_json({"type": "message", "client_id": "c1", "text": "help"})
    reply, frames = await until(ws, "reply")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack" and "typing" in kinds and "delta" in kinds
    assert reply["client_id"] == "c1" and reply["skill"] == "help" and reply["message_id"]
    assert "Let's write a story" in reply["suggestions"]
    await ws.close()


async def test_a_resend_is_answered_from_the_first_turn_and_stored_once(client, tandem) -> None:
    ws, welcome = await hello(client)
    await ws.send_json({"type": "message", "client_id": "same", "text": "help"})
    first, _ = await until(ws, "reply")
    await ws.close()
    # The client reconnects and sends again, as after a lost ack.
    ws, _ = await hello(client, token=welcome["token"], conversation_id=welcome["conversation_id"])
    await ws.send_json({"type": "message", "client_id": "same", "text": "help"})
    ack, _ = await until(ws, "ack")
    again, _ = await until(ws, "reply")
    assert ack["duplicate"] is True and again["message_id"] == first["message_id"]
    assert await count(tandem, Message, Message.conversation_id == welcome["conversation_id"]) == 2
    await ws.close()


async def test_the_token_resumes_the_conversation_with_its_transcript_and_feedback(client) -> None:
    ws, welcome = await hello(client)
    await ws.send_json({"type": "message", "client_id": "a", "text": "help"})
    reply, _ = await until(ws, "reply")
    await ws.send_json({"type": "thumb", "message_id": reply["message_id"], "value": "down"})
    assert (await until(ws, "thumb_saved"))[0]["value"] == "down"
    await ws.send_json({"type": "rating", "rating": 2, "comment": "  meh "})
    assert (await until(ws, "rating_saved"))[0] == {"type": "rating_saved", "rating": 2, "comment": "meh"}
    await ws.close()

    ws, resumed = await hello(client, token=welcome["token"])
    assert resumed["resumed"] is True and resumed["token"] == welcome["token"]
    assert resumed["conversation_id"] == welcome["conversation_id"]
    assert [(m["author"], m["thumb"]) for m in resumed["messages"]] == [("user", None), ("bot", "down")]
    assert resumed["rating"] == {"rating": 2, "comment": "meh"}
    await ws.close()


async def test_a_session_never_reaches_another_sessions_conversation(client) -> None:
    ann, ann_welcome = await hello(client)
    await ann.send_json({"type": "message", "client_id": "a", "text": "help"})
    ann_reply, _ = await until(ann, "reply")
    bob, bob_welcome = await hello(client, conversation_id=ann_welcome["conversation_id"])
    assert bob_welcome["conversation_id"] != ann_welcome["conversation_id"] and bob_welcome["messages"] == []
    await bob.send_json({"type": "thumb", "message_id": ann_reply["message_id"], "value": "up"})
    assert (await until(bob, "error"))[0]["code"] == "not_found"
    # An unknown token gets a fresh session, not an error and not someone else's.
    stranger, fresh = await hello(client, token="not-a-token")
    assert fresh["token"] != "not-a-token" and fresh["messages"] == []
    for ws in (ann, bob, stranger):
        await ws.close()


async def test_bad_frames_get_errors_and_store_nothing(client, tandem) -> None:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "message", "client_id": "x", "text": "hi"})
    assert (await ws.receive_json())["code"] == "hello_first"
    await ws.send_str("{not json")
    assert (await ws.receive_json())["code"] == "bad_request"
    await ws.send_json({"type": "hello"})
    welcome, _ = await until(ws, "welcome")
    await ws.send_json({"type": "message", "client_id": "e", "text": "   "})
    rejected, _ = await until(ws, "rejected")
    assert rejected["client_id"] == "e"
    await ws.send_json({"type": "message", "text": "no id"})
    assert (await until(ws, "error"))[0]["code"] == "bad_request"
    await ws.send_json({"type": "rating", "rating": 9})
    assert (await until(ws, "error"))[0]["code"] == "bad_request"
    await ws.send_json({"type": "thumb", "message_id": "1", "value": "up"})
    assert (await until(ws, "error"))[0]["code"] == "bad_request"
    await ws.send_json({"type": "ping"})
    await until(ws, "pong")
    assert await count(tandem, Message, Message.conversation_id == welcome["conversation_id"]) == 0
    assert await count(tandem, Feedback) == 0
    await ws.close()


async def test_a_rating_answers_the_offer_the_widget_showed(client, tandem) -> None:
    ws, welcome = await hello(client)
    await ws.send_json({"type": "offer", "kind": "rating"})
    await ws.send_json({"type": "rating", "rating": 5})
    await until(ws, "rating_saved")
    conversation = welcome["conversation_id"]
    assert await count(tandem, FeedbackOffer, FeedbackOffer.conversation_id == conversation,
                       FeedbackOffer.answered.is_(True)) == 1
    await ws.close()


async def test_new_conversation_starts_empty_and_is_the_one_resumed(client) -> None:
    ws, welcome = await hello(client)
    await ws.send_json({"type": "message", "client_id": "a", "text": "help"})
    await until(ws, "reply")
    await ws.send_json({"type": "new_conversation"})
    fresh, _ = await until(ws, "welcome")
    assert fresh["conversation_id"] != welcome["conversation_id"] and fresh["messages"] == []
    await ws.close()
    _, resumed = await hello(client, token=welcome["token"])
    assert resumed["conversation_id"] == fresh["conversation_id"]


async def test_stop_cancels_the_generation_and_keeps_the_partial_text(settings) -> None:
    model = FakeLanguageModel(" ".join(f"word{i}" for i in range(200)), delay_s=0.02)
    tandem = await build_app(settings, language_model=model)
    try:
        async with TestClient(TestServer(init_app(tandem))) as client:
            ws, _ = await hello(client)
            await ws.send_json({"type": "message", "client_id": "s", "text": "let's write a story"})
            await until(ws, "reply")
            await ws.send_json({"type": "message", "client_id": "t", "text": "Mira found a lantern."})
            await until(ws, "delta")
            await ws.send_json({"type": "stop"})
            reply, _ = await until(ws, "reply")
            assert reply["status"] == "incomplete" and "word0" in reply["text"] and "word199" not in reply["text"]
            await ws.close()
    finally:
        await tandem.close()


async def test_origin_must_be_the_servers_own_or_configured(settings) -> None:
    settings.server.allowed_origins = ("https://shop.example",)
    tandem = await build_app(settings)
    try:
        async with TestClient(TestServer(init_app(tandem))) as client:
            with pytest.raises(WSServerHandshakeError) as refused:
                await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
            assert refused.value.status == 403
            for origin in ("https://shop.example", str(client.make_url("/")).rstrip("/")):
                ws = await client.ws_connect("/ws", headers={"Origin": origin})
                await ws.close()
            # CORS on the JSON API: the configured origin gets the header, another does not.
            allowed = await client.post("/api/conversations", headers={"Origin": "https://shop.example"})
            assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
            other = await client.post("/api/conversations", headers={"Origin": "https://evil.example"})
            assert "Access-Control-Allow-Origin" not in other.headers
            preflight = await client.options("/api/conversations", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
            assert preflight.status == 403
            preflight = await client.options("/api/stories", headers={
                "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            assert preflight.status == 204 and "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    finally:
        await tandem.close()


async def test_an_overloaded_bot_says_busy_without_an_ack_and_takes_the_resend(client, tandem) -> None:
    import asyncio

    dispatcher = tandem.dispatcher
    dispatcher.admission.max_total = 1
    dispatcher.admission.in_flight += 1  # one turn "in flight"
    ws, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "c1", "text": "help"})
    refused = await ws.receive_json()
    assert refused["type"] == "error" and refused["code"] == "busy" and refused["client_id"] == "c1"
    assert refused["retry_after"] >= 1
    assert await count(tandem, Message) == 0
    dispatcher.admission.in_flight -= 1
    await ws.send_json({"type": "message", "client_id": "c1", "text": "help"})  # the widget's resend
    ack, _ = await until(ws, "ack")
    assert ack["duplicate"] is False
    reply, _ = await until(ws, "reply")
    assert reply["skill"] == "help" and await count(tandem, Message) == 2
    await ws.close()


@pytest.mark.parametrize("with_redis", [True, False], ids=["relayed", "stored"])
async def test_a_widget_that_reconnects_to_another_worker_gets_its_pending_reply(
        settings, request, with_redis: bool) -> None:
    """The socket drops mid-answer and the widget reconnects to another worker (its own ledger,
    one database): the welcome lists the turn as pending and its reply follows there, streamed
    as the first worker writes it when Redis relays, else whole once stored."""
    from pydantic import SecretStr

    if with_redis:
        settings.server.redis_url = SecretStr(request.getfixturevalue("redis_url"))
    model = FakeLanguageModel(" ".join(f"word{i}" for i in range(60)), delay_s=0.03)
    one = await build_app(settings, language_model=model)
    two = await build_app(settings, migrate=False, language_model=model)
    try:
        async with TestClient(TestServer(init_app(one))) as first, TestClient(TestServer(init_app(two))) as second:
            ws, welcome = await hello(first)
            await ws.send_json({"type": "message", "client_id": "s", "text": "let's write a story"})
            await until(ws, "reply")
            await ws.send_json({"type": "message", "client_id": "t", "text": "Mira found a lantern."})
            await until(ws, "delta")
            await ws.close()  # the connection breaks; the first worker's turn runs on
            ws, resumed = await hello(second, token=welcome["token"], conversation_id=welcome["conversation_id"])
            assert resumed["pending"] == ["t"]
            reply, frames = await until(ws, "reply")
            assert reply["client_id"] == "t" and "word0" in reply["text"]
            deltas = [f for f in frames if f["type"] == "delta"]
            if with_redis:  # streamed before the reply, as the first worker wrote it
                assert deltas and "word0" in "".join(d["text"] for d in deltas)
            await ws.close()
        async with one.db.transaction() as session:
            rows = (await session.execute(select(Message.author, Message.client_id)
                                          .where(Message.conversation_id == welcome["conversation_id"])
                                          .order_by(Message.id))).all()
        assert [tuple(r) for r in rows] == [("user", "s"), ("bot", None), ("user", "t"), ("bot", None)]
    finally:
        await two.close()
        await one.close()


async def test_small_talk_reaches_the_widget_word_by_word(settings) -> None:
    model = FakeLanguageModel("I'm doing well, thank you for asking. What about you?", delay_s=0.01)
    app = await build_app(settings, language_model=model)
    try:
        async with TestClient(TestServer(init_app(app))) as test_client:
            ws, _ = await hello(test_client)
            await ws.send_json({"type": "message", "client_id": "chat1", "text": "how are you?"})
            reply, frames = await until(ws, "reply")
            deltas = [f["text"] for f in frames if f["type"] == "delta"]
            assert reply["skill"] == "smalltalk" and len(deltas) >= 3
            assert reply["text"].startswith("".join(deltas).strip())
            await ws.close()
    finally:
        await app.close()


class _Stream:
    done = False


def test_the_ledger_forgets_the_oldest_message_beyond_its_size() -> None:
    ledger = ClientLedger(size=2)
    sent = [_Sent(_Stream(), "conv") for _ in range(3)]
    for index, entry in enumerate(sent):
        ledger.add("conv", f"c{index}", entry)
    assert ledger.get("conv", "c0") is None  # the oldest went first
    assert [cid for cid, _ in ledger.running("conv")] == ["c1", "c2"]
    ledger.forget("conv", "c1", sent[0])      # another message's entry: kept
    ledger.forget("conv", "c2", sent[2])
    assert [cid for cid, _ in ledger.running("conv")] == ["c1"]
