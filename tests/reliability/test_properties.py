"""Property tests with generated input: clean_user_text and clean_text on any string (surrogates and
controls included), and the HTTP API and WebSocket on generated text and JSON values. Whatever comes
in, the answer is a clear 4xx or error frame, or the text is stored exactly as clean_user_text makes it.

Examples per property come from the `tandem-fast` profile (set HYPOTHESIS_PROFILE=tandem-thorough for
a longer hunt); the profiles are applied per test, never loaded globally."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.core.errors import InputError
from bot.core.text import clean_text, clean_user_text, is_blank
from bot.server import init_app
from tests.reliability.conftest import assert_no_traceback, open_conversation, row_counts

_COMMON = {"deadline": None, "database": None, "print_blob": True,
           # The per-test environment cleaner (autouse) is function-scoped on purpose; examples share it.
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("tandem-fast", max_examples=40, **_COMMON)
settings.register_profile("tandem-thorough", max_examples=1000, **_COMMON)
_CHOSEN = os.environ.get("HYPOTHESIS_PROFILE", "")
PROFILE = settings.get_profile(_CHOSEN if _CHOSEN.startswith("tandem-") else "tandem-fast")
# Pure functions are cheap: more examples there, in the same time as the HTTP properties.
PURE = settings(PROFILE, max_examples=max(PROFILE.max_examples, 60))

# Characters that broke or could break cleaning: NUL, CR, ESC, DEL, C1, zero-width and bidi marks,
# BOM, lone surrogates, combining marks, a decomposed accent, ideographic space, emoji with ZWJ.
NASTY = ["\x00", "\r", "\n", "\t", "\x1b", "\x7f", "\x85", "\x9b", "\u200b", "\u200d", "\u202e", "\u2066",
         "\ufeff", "\ud800", "\udfff", "\ud83d", "\ude00", "\u0301", "\u0336", "e\u0301", "\u3000", "\u2028",
         "👨\u200d👩\u200d👧", "\U0010ffff", "\uffff", "<script>", "'; --"]
ANY_CHAR = st.characters(exclude_categories=())  # every code point, surrogates included
# Pieces joined, since some of NASTY are longer than one character.
HOSTILE_TEXT = st.lists(st.one_of(ANY_CHAR, st.sampled_from(NASTY)), max_size=120).map("".join)
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | HOSTILE_TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(HOSTILE_TEXT, children, max_size=4), max_leaves=8)


def assert_clean(text: str) -> None:
    text.encode("utf-8")  # valid UTF-8: no lone surrogates left
    assert unicodedata.is_normalized("NFC", text)
    assert not any(unicodedata.category(char) == "Cc" and char not in "\t\n" for char in text), ascii(text)


# --- the cleaning functions ------------------------------------------------------------------

@PURE
@given(text=HOSTILE_TEXT, limit=st.integers(min_value=1, max_value=400))
def test_clean_user_text_gives_clean_text_or_an_input_error(text: str, limit: int) -> None:
    try:
        out = clean_user_text(text, limit)
    except InputError as exc:
        assert str(exc) and ("empty" in str(exc) or "too long" in str(exc))
        return
    assert_clean(out)
    assert 0 < len(out) <= limit and out == out.strip() and not is_blank(out)
    assert clean_user_text(out, limit) == out  # cleaning twice changes nothing


@PURE
@given(value=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(),
                       st.lists(HOSTILE_TEXT, max_size=3), st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3)))
def test_clean_user_text_refuses_anything_but_text(value: Any) -> None:
    with pytest.raises(InputError, match="only read text"):
        clean_user_text(value, 4096)


@PURE
@given(text=HOSTILE_TEXT)
def test_clean_text_never_raises_and_keeps_the_visible_text(text: str) -> None:
    out = clean_text(text)
    assert_clean(out)
    assert "\r" not in out and clean_text(out) == out
    # Nothing visible is lost: the ASCII letters and digits (of the decomposed text) come out as they went in.
    assert ascii_alnum(out) == ascii_alnum(text)


def ascii_alnum(text: str) -> list[str]:
    return [c for c in unicodedata.normalize("NFD", text) if c.isascii() and c.isalnum()]


# --- the HTTP API --------------------------------------------------------------------------------

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(sqlite_tandem) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(init_app(sqlite_tandem))) as test_client:
        yield test_client


@module_loop
@PROFILE
@given(value=st.one_of(HOSTILE_TEXT, JSON_VALUES))
async def test_a_generated_message_text_is_stored_as_cleaned_or_refused_with_400(client, sqlite_tandem,
                                                                                value: Any) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(sqlite_tandem)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": value}, headers=auth)
    raw = await response.text()
    assert_no_traceback(raw)
    try:
        expected = clean_user_text(value, sqlite_tandem.settings.dispatcher.max_text_chars)
    except InputError as exc:
        assert response.status == 400 and json.loads(raw)["error"]["message"] == str(exc)
        assert await row_counts(sqlite_tandem) == before
        return
    assert response.status == 200, raw
    stored = await sqlite_tandem.conversations.messages(conversation)
    assert stored[0].text == expected and stored[1].text.strip()


@module_loop
@PROFILE
@given(body=st.dictionaries(st.one_of(st.sampled_from(["rating", "comment", "text", "thumb"]), HOSTILE_TEXT),
                            JSON_VALUES, max_size=3))
async def test_a_generated_rating_body_is_stored_only_when_valid(client, sqlite_tandem, body: dict) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(sqlite_tandem)
    response = await client.post(f"/api/conversations/{conversation}/rating", json=body, headers=auth)
    raw = await response.text()
    assert_no_traceback(raw)
    rating, comment = body.get("rating"), body.get("comment")
    valid_rating = isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5
    valid_comment = comment is None or (isinstance(comment, str) and len(clean_text(comment).strip()) <= 4000)
    if valid_rating and valid_comment:
        assert response.status == 201, raw
        feedback = await sqlite_tandem.feedback.for_conversation(conversation)
        assert len(feedback) == 1 and feedback[0].value == rating
        stored = feedback[0].comment
        if stored is not None:  # a comment that shows nothing is no comment
            assert_clean(stored)
            assert stored == stored.strip() and not is_blank(stored)
    else:
        assert response.status == 400, raw
        assert await row_counts(sqlite_tandem) == before


@module_loop
@PROFILE
@given(message_id=st.one_of(st.integers(), st.text(max_size=40)), thumb=JSON_VALUES)
async def test_a_generated_thumb_never_fails_on_the_server(client, sqlite_tandem, message_id: Any,
                                                          thumb: Any) -> None:
    _, auth = await open_conversation(client)
    before = await row_counts(sqlite_tandem)
    segment = str(message_id)
    assume(segment.strip(".") and not any(c in segment for c in "/?#%\\"))  # stays one path segment
    response = await client.post(f"/api/messages/{segment}/feedback", json={"thumb": thumb}, headers=auth)
    raw = await response.text()
    assert_no_traceback(raw)
    assert 400 <= response.status < 500, raw  # this user owns no bot message at all
    assert await row_counts(sqlite_tandem) == before


# --- the WebSocket --------------------------------------------------------------------------------

FRAME_TYPES = ["hello", "message", "stop", "thumb", "rating", "offer", "new_conversation", "ping",
               "delete_my_data"]
FRAME_FIELDS = ["client_id", "text", "message_id", "value", "rating", "comment", "kind", "token",
                "conversation_id", "language", "confirm"]
FRAMES = st.fixed_dictionaries({"type": st.one_of(st.sampled_from(FRAME_TYPES), JSON_VALUES)},
                               optional={field: JSON_VALUES for field in FRAME_FIELDS})
KNOWN_REPLIES = {"welcome", "ack", "typing", "delta", "reply", "rejected", "thumb_saved", "rating_saved",
                 "pong", "error", "deleted"}


@module_loop
@PROFILE
@given(frames=st.lists(FRAMES, min_size=1, max_size=4))
async def test_generated_frames_get_well_formed_answers_and_the_socket_survives(client, frames: list[dict]) -> None:
    assume(not any(f.get("type") == "delete_my_data" and f.get("confirm") is True for f in frames))
    ws = await client.ws_connect("/ws")
    try:
        await ws.send_json({"type": "hello"})
        for frame in frames:
            await ws.send_str(json.dumps(frame))
        await ws.send_json({"type": "ping"})
        while True:  # every answer up to the pong: a known frame type, never an internal error
            msg = await ws.receive(timeout=15)
            assert msg.type.name == "TEXT", (msg.type, msg.data)
            assert_no_traceback(msg.data)
            answer = json.loads(msg.data)
            assert answer["type"] in KNOWN_REPLIES and answer.get("code") != "internal", answer
            if answer["type"] == "pong":
                break
    finally:
        await ws.close()
