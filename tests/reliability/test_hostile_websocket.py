"""The hostile-input corpus against the widget's WebSocket: text and binary frames that are not JSON,
not objects, not UTF-8 or over the size limit, wrong types in every field of every frame type, and
the corpus texts as messages and comments. Each gets a `rejected` or `error` frame (or, for frames
the protocol itself forbids, a close code), nothing refused is stored, and the server answers on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient

from bot.core.errors import StorageError
from tests.reliability.conftest import assert_no_traceback, row_counts
from tests.reliability.hostile_inputs import (
    BODIES, COMMENT_VALUES, ID_VALUES, RATING_VALUES, TEXT_VALUES, TEXTS, WS_CONVERSATION_IDS, MISSING, HostileBody,
    HostileText, params,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def client(hostile_client: TestClient) -> TestClient:
    return hostile_client
TIMEOUT = 15


async def hello(client: TestClient, **fields: Any):
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", **fields})
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def receive(ws) -> dict[str, Any]:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    assert_no_traceback(msg.data)
    return json.loads(msg.data)


async def until(ws, *kinds: str) -> dict[str, Any]:
    """The first frame of one of `kinds` (frames before it, such as typing and delta, are skipped)."""
    while True:
        frame = await receive(ws)
        if frame["type"] in kinds:
            return frame


async def closed_with(ws) -> int:
    """The close code of a socket the server is closing."""
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), (msg.type, msg.data)
    return ws.close_code


async def assert_socket_still_answers(client: TestClient) -> None:
    """A new session's "help" is acknowledged and answered by the help skill."""
    ws, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "help", "text": "help"})
    reply = await until(ws, "reply")
    assert reply["skill"] == "help" and "Tandem" in reply["text"]
    await ws.close()


# --- messages ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(TEXTS))
async def test_message_texts_are_rejected_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    ws, welcome = await hello(client)
    before = await row_counts(hostile_tandem)
    frame = json.dumps({"type": "message", "client_id": case.name, "text": case.text})
    await ws.send_str(frame)
    if len(frame.encode()) > hostile_tandem.settings.server.max_ws_message_bytes:
        # Over the frame limit the protocol ends the socket (1009) before any JSON is read.
        assert await closed_with(ws) == WSCloseCode.MESSAGE_TOO_BIG
        assert case.refused
    elif case.refused:
        rejected = await until(ws, "rejected", "reply")
        assert rejected["type"] == "rejected" and rejected["client_id"] == case.name
        assert case.refusal in rejected["message"]
    else:
        ack = await until(ws, "ack")
        reply = await until(ws, "reply")
        assert ack == {"type": "ack", "client_id": case.name, "duplicate": False}
        assert reply["client_id"] == case.name and reply["text"].strip() and reply["status"] != "fallback"
        stored = await hostile_tandem.conversations.messages(welcome["conversation_id"])
        assert [m.author for m in stored] == ["user", "bot"] and stored[0].text == case.stored
    if case.refused:
        assert await row_counts(hostile_tandem) == before
    await ws.close()
    await assert_socket_still_answers(client)


@pytest.mark.parametrize("case", params(BODIES))
async def test_raw_text_frames_get_an_error_or_are_stored_cleaned(client, hostile_tandem, case: HostileBody) -> None:
    ws, welcome = await hello(client)
    before = await row_counts(hostile_tandem)
    frame = case.ws_frame(case.name)
    await ws.send_frame(frame, WSMsgType.TEXT)
    if not case.utf8:
        # A text frame must be UTF-8; the protocol ends the socket (1007) before Tandem sees it.
        assert await closed_with(ws) == WSCloseCode.INVALID_TEXT
    elif case.stored is None:
        answer = await until(ws, "error", "rejected")
        assert case.refusal in answer["message"], answer
    else:
        await until(ws, "ack")
        reply = await until(ws, "reply")
        assert reply["client_id"] == case.name
        assert (await hostile_tandem.conversations.messages(welcome["conversation_id"]))[0].text == case.stored
    if case.stored is None:
        assert await row_counts(hostile_tandem) == before
    await ws.close()
    await assert_socket_still_answers(client)


async def test_binary_frames_get_an_error_and_the_socket_answers_on(client, hostile_tandem) -> None:
    ws, _ = await hello(client)
    before = await row_counts(hostile_tandem)
    for case in BODIES:
        await ws.send_bytes(case.ws_frame(case.name))
        error = await receive(ws)
        assert error["type"] == "error" and error["code"] == "bad_request" and "binary" in error["message"], case.name
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    assert await row_counts(hostile_tandem) == before
    await ws.close()


async def test_a_frame_over_the_size_limit_closes_only_that_socket(client, hostile_tandem) -> None:
    bystander, _ = await hello(client)
    ws, _ = await hello(client)
    before = await row_counts(hostile_tandem)
    limit = hostile_tandem.settings.server.max_ws_message_bytes
    await ws.send_str(json.dumps({"type": "message", "client_id": "big", "text": "x" * limit}))
    assert await closed_with(ws) == WSCloseCode.MESSAGE_TOO_BIG
    assert await row_counts(hostile_tandem) == before
    await bystander.send_json({"type": "ping"})
    assert (await receive(bystander))["type"] == "pong"
    await bystander.close()
    await assert_socket_still_answers(client)


@pytest.mark.parametrize("case", params(TEXT_VALUES))
async def test_a_message_text_of_the_wrong_type_is_rejected(client, hostile_tandem, case) -> None:
    ws, _ = await hello(client)
    before = await row_counts(hostile_tandem)
    frame = {"type": "message", "client_id": case.name}
    if case.value is not MISSING:
        frame["text"] = case.value
    await ws.send_json(frame)
    rejected = await until(ws, "rejected", "error", "reply")
    assert rejected["type"] == "rejected" and "only read text" in rejected["message"]
    assert await row_counts(hostile_tandem) == before
    await ws.close()


# --- every other field ----------------------------------------------------------------------------

WRONG_FRAMES: list[tuple[str, dict[str, Any], str]] = [
    # (name, frame, the error code expected)
    *[(f"type_{name}", {"type": value}, "bad_request") for name, value in [
        ("number", 42), ("null", None), ("list", ["message"]), ("object", {"type": "ping"}), ("empty", ""),
        ("upper_case", "MESSAGE"), ("unknown", "drop_tables"), ("lone_surrogate", "\ud800"), ("huge", "x" * 30_000),
    ]],
    ("type_missing", {"text": "hi"}, "bad_request"),
    *[(f"client_id_{name}", {"type": "message", "client_id": value, "text": "hi"}, "bad_request") for name, value in [
        ("missing", MISSING), ("null", None), ("number", 7), ("list", ["a"]), ("empty", ""), ("too_long", "c" * 65),
        ("object", {"id": "a"}), ("true", True),
    ]],
    *[(f"thumb_message_id_{case.name}", {"type": "thumb", "message_id": case.value, "value": "up"}, "")
      for case in ID_VALUES],
    *[(f"thumb_value_{name}", {"type": "thumb", "message_id": 1, "value": value}, "bad_request") for name, value in [
        ("sideways", "sideways"), ("number", 1), ("null", None), ("true", True), ("upper", "UP"), ("list", ["up"]),
    ]],
    *[(f"rating_{case.name}", {"type": "rating", **({} if case.value is MISSING else {"rating": case.value})},
       "bad_request") for case in RATING_VALUES],
    *[(f"comment_{case.name}", {"type": "rating", "rating": 4, "comment": case.value}, "bad_request")
      for case in COMMENT_VALUES],
    *[(f"offer_kind_{name}", {"type": "offer", "kind": value}, "bad_request") for name, value in [
        ("thumb", "thumb"), ("number", 1), ("null", None), ("list", ["rating"]), ("script", "<script>"),
    ]],
    *[(f"delete_confirm_{name}", {"type": "delete_my_data", "confirm": value}, "confirmation_required")
      for name, value in [("string", "true"), ("number", 1), ("missing", MISSING), ("list", [True])]],
]


@pytest.mark.parametrize("name, frame, code", [pytest.param(*w, id=w[0]) for w in WRONG_FRAMES])
async def test_a_wrong_type_in_any_field_gets_an_error_and_stores_nothing(client, hostile_tandem, name: str,
                                                                           frame: dict[str, Any], code: str) -> None:
    ws, welcome = await hello(client)
    await ws.send_json({"type": "message", "client_id": "first", "text": "help"})
    reply = await until(ws, "reply")
    before = await row_counts(hostile_tandem)
    await ws.send_json({key: value for key, value in frame.items() if value is not MISSING})
    error = await until(ws, "error", "rejected", "thumb_saved", "rating_saved", "welcome", "deleted")
    assert error["type"] == "error" and error["message"], error
    if code:
        assert error["code"] == code, error
    else:  # an id: of the wrong type, or naming nothing of this user's
        assert error["code"] in ("bad_request", "not_found"), error
    assert await row_counts(hostile_tandem) == before
    # The same socket goes on: its own bot message still takes a thumb.
    await ws.send_json({"type": "thumb", "message_id": reply["message_id"], "value": "up"})
    assert (await until(ws, "thumb_saved", "error"))["type"] == "thumb_saved"
    await ws.close()


@pytest.mark.parametrize("case", params(WS_CONVERSATION_IDS))
async def test_hello_with_a_hostile_conversation_id_gets_its_own_conversation(client, hostile_tandem, case) -> None:
    ann, ann_welcome = await hello(client)
    await ann.send_json({"type": "message", "client_id": "a", "text": "help"})
    await until(ann, "reply")
    for fields in ({"conversation_id": case.value},
                   {"token": ann_welcome["token"], "conversation_id": case.value},
                   {"token": case.value, "language": case.value}):
        ws, welcome = await hello(client, **fields)
        if fields.get("token") == ann_welcome["token"]:
            assert welcome["conversation_id"] == ann_welcome["conversation_id"]  # her current one, nothing else
        else:
            assert welcome["conversation_id"] != ann_welcome["conversation_id"] and welcome["messages"] == []
        await ws.close()
    await ann.close()


async def test_another_sessions_ids_get_not_found(client, hostile_tandem) -> None:
    ann, _ = await hello(client)
    await ann.send_json({"type": "message", "client_id": "a", "text": "help"})
    ann_reply = await until(ann, "reply")
    bob, _ = await hello(client)
    before = await row_counts(hostile_tandem)
    for message_id in (ann_reply["message_id"], ann_reply["user_message_id"]):
        await bob.send_json({"type": "thumb", "message_id": message_id, "value": "down"})
        assert (await until(bob, "error", "thumb_saved"))["code"] == "not_found"
    # A resend of Ann's client id from Bob is Bob's own new message, never Ann's reply.
    await bob.send_json({"type": "message", "client_id": "a", "text": "help"})
    ack = await until(bob, "ack")
    assert ack["duplicate"] is False
    assert (await until(bob, "reply"))["message_id"] != ann_reply["message_id"]
    assert (await row_counts(hostile_tandem))["feedback"] == before["feedback"]
    for ws in (ann, bob):
        await ws.close()


@pytest.mark.parametrize("case", params(TEXTS))
async def test_rating_comments_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    ws, welcome = await hello(client)
    before = await row_counts(hostile_tandem)
    frame = json.dumps({"type": "rating", "rating": 5, "comment": case.text})
    await ws.send_str(frame)
    accepted, stored = case.as_comment()
    if len(frame.encode()) > hostile_tandem.settings.server.max_ws_message_bytes:
        assert await closed_with(ws) == WSCloseCode.MESSAGE_TOO_BIG
        assert not accepted
    elif accepted:
        saved = await until(ws, "rating_saved", "error")
        assert saved == {"type": "rating_saved", "rating": 5, "comment": stored}
        feedback = await hostile_tandem.feedback.for_conversation(welcome["conversation_id"])
        assert [(f.kind, f.value, f.comment) for f in feedback] == [("rating", 5, stored)]
    else:
        error = await until(ws, "rating_saved", "error")
        assert error["type"] == "error" and "at most" in error["message"]
    if not accepted:
        assert await row_counts(hostile_tandem) == before
    await ws.close()


# --- failures behind a frame --------------------------------------------------------------------

async def test_a_storage_failure_in_hello_is_an_error_frame_not_a_broken_socket(client, hostile_tandem,
                                                                               monkeypatch) -> None:
    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("database error: OperationalError")

    ws = await client.ws_connect("/ws")
    monkeypatch.setattr(hostile_tandem.conversations, "create_token_user", unavailable)
    await ws.send_json({"type": "hello"})
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == "unavailable"
    monkeypatch.undo()
    await ws.send_json({"type": "hello"})
    assert (await receive(ws))["type"] == "welcome"
    await ws.close()


async def test_an_unexpected_error_behind_a_frame_is_an_error_frame_and_the_socket_lives(
        client, hostile_tandem, monkeypatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    ws, _ = await hello(client)
    monkeypatch.setattr(hostile_tandem.feedback, "add_offer", broken)
    await ws.send_json({"type": "offer", "kind": "rating"})
    error = await receive(ws)
    assert error["type"] == "error" and error["code"] == "internal" and "secret" not in error["message"]
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    await ws.close()
