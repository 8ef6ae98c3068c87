"""The hostile-input corpus against the JSON HTTP API and the story endpoints: every case gets a clear
4xx or is stored cleaned, nothing refused changes a row, no answer is a 5xx or shows a traceback,
HTML comes back escaped on the dashboard, and a prompt injection stays story text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.models.base import ChatMessage
from bot.story.prompt import continue_instruction
from tests.reliability.conftest import (
    ADMIN_TOKEN, assert_no_traceback, assert_still_answers, open_conversation, row_counts,
)
from tests.reliability.hostile_inputs import (
    BODIES, COMMENT_VALUES, CONVERSATION_IDS, ID_VALUES, MAX_PASSAGE_CHARS, MISSING, PATH_IDS, RATING_VALUES,
    TEXT_VALUES, TEXTS, HostileBody, HostileText, HostileValue, params,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def client(hostile_client: TestClient) -> TestClient:
    return hostile_client
JSON = {"Content-Type": "application/json"}


async def answer(response) -> tuple[int, Any]:
    """Status and body; every answer is JSON (errors included) and shows no traceback."""
    raw = await response.text()
    assert_no_traceback(raw)
    assert response.status < 500, raw
    return response.status, json.loads(raw) if raw else None


def error_message(body: Any) -> str:
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return body["error"]["message"]


async def new_story(client: TestClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/stories", json={"title": "Owls", "text": "An owl lived in an oak.", **fields},
                                 headers=auth)
    status, body = await answer(response)
    assert status == 201, body
    return body["story"]


# --- chat messages ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(TEXTS))
async def test_message_texts_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/messages",
                                                  json={"text": case.text}, headers=auth))
    if case.refused:
        assert status == 400 and case.refusal in error_message(body)
        assert await row_counts(hostile_tandem) == before
    else:
        assert status == 200 and body["text"].strip() and body["status"] != "fallback", body
        stored = await hostile_tandem.conversations.messages(conversation)
        assert [(m.author, m.id) for m in stored] == [("user", body["user_message_id"]), ("bot", body["message_id"])]
        assert stored[0].text == case.stored
        transcript = await (await client.get(f"/api/conversations/{conversation}/messages", headers=auth)).json()
        assert transcript["messages"][0]["text"] == case.stored  # HTML and all, as text in JSON
    await assert_still_answers(client)


@pytest.mark.parametrize("name", ["empty", "lone_surrogates", "script_tag", "emoji_flood", "one_megabyte"])
async def test_streamed_messages_refuse_before_the_stream_and_stream_clean_text(client, hostile_tandem,
                                                                                 name: str) -> None:
    case = next(c for c in TEXTS if c.name == name)
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"text": case.text},
                                 headers={**auth, "Accept": "text/event-stream"})
    raw = await response.text()
    assert_no_traceback(raw)
    if case.refused:
        assert response.status == 400 and case.refusal in error_message(json.loads(raw))
        assert await row_counts(hostile_tandem) == before
    else:
        assert response.status == 200 and "event: reply" in raw
        assert (await hostile_tandem.conversations.messages(conversation))[0].text == case.stored


@pytest.mark.parametrize("case", params(BODIES))
async def test_raw_message_bodies_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileBody) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/messages", data=case.raw,
                                                  headers={**auth, **JSON}))
    if case.stored is None:
        assert status == 400 and case.refusal in error_message(body), body
        assert await row_counts(hostile_tandem) == before
    else:
        assert status == 200, body
        assert (await hostile_tandem.conversations.messages(conversation))[0].text == case.stored
    await assert_still_answers(client)


@pytest.mark.parametrize("case", params(TEXT_VALUES))
async def test_a_text_of_the_wrong_type_is_refused(client, hostile_tandem, case: HostileValue) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    payload = {} if case.value is MISSING else {"text": case.value}
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/messages", json=payload,
                                                  headers=auth))
    assert status == 400 and "only read text" in error_message(body)
    assert await row_counts(hostile_tandem) == before


# --- ratings and thumbs -------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(RATING_VALUES))
async def test_a_rating_outside_1_to_5_is_refused(client, hostile_tandem, case: HostileValue) -> None:
    conversation, auth = await open_conversation(client)
    await client.post(f"/api/conversations/{conversation}/rating", json={"rating": 3}, headers=auth)
    before = await row_counts(hostile_tandem)
    payload = {} if case.value is MISSING else {"rating": case.value}
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/rating", json=payload,
                                                  headers=auth))
    assert status == 400 and "1 to 5" in error_message(body)
    assert await row_counts(hostile_tandem) == before
    assert [f.value for f in await hostile_tandem.feedback.for_conversation(conversation)] == [3]


@pytest.mark.parametrize("case", params(TEXTS))
async def test_rating_comments_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/rating",
                                                  json={"rating": 4, "comment": case.text}, headers=auth))
    accepted, stored = case.as_comment()
    if accepted:
        assert status == 201, body
        assert [(f.kind, f.value, f.comment) for f in await hostile_tandem.feedback.for_conversation(conversation)] \
            == [("rating", 4, stored)]
    else:
        assert status == 400 and "at most" in error_message(body)
        assert await row_counts(hostile_tandem) == before


@pytest.mark.parametrize("case", params(COMMENT_VALUES))
async def test_a_comment_of_the_wrong_type_is_refused(client, hostile_tandem, case: HostileValue) -> None:
    conversation, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/rating",
                                                  json={"rating": 4, "comment": case.value}, headers=auth))
    assert status == 400 and "must be a string" in error_message(body)
    assert await row_counts(hostile_tandem) == before


async def test_html_in_comments_is_stored_as_text_and_escaped_on_the_dashboard(client, hostile_tandem) -> None:
    html_cases = [c for c in TEXTS if c.name in ("script_tag", "img_onerror", "unclosed_html",
                                                  "telegram_markdown_breakers", "right_to_left_override")]
    for case in html_cases:
        conversation, auth = await open_conversation(client)
        response = await client.post(f"/api/conversations/{conversation}/rating",
                                     json={"rating": 2, "comment": case.text}, headers=auth)
        assert response.status == 201
    page = await client.get("/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    html = await page.text()
    assert page.status == 200 and "Latest comments" in html
    assert_no_traceback(html)
    for raw in ("<script>", "<img", "onerror=\"", "<b>bold", "<a href='"):
        assert raw not in html, raw
    # Jinja2's autoescape spells quotes as &#39; and &#34; (html.escape wrote &#x27; and &quot;).
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(document.cookie)&#34;&gt;" in html
    assert "&lt;b&gt;bold &lt;i&gt;never closed &amp;amp; &amp;lt; &lt;a href=&#39;" in html


async def test_a_thumb_for_a_hostile_message_id_is_404(client, hostile_tandem) -> None:
    _, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    for case in PATH_IDS:
        status, body = await answer(await client.post(f"/api/messages/{case.value}/feedback", json={"thumb": "up"},
                                                      headers=auth))
        assert status == 404 and error_message(body), case.name
    assert await row_counts(hostile_tandem) == before
    await assert_still_answers(client)


async def test_hostile_conversation_ids_are_404(client, hostile_tandem) -> None:
    _, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    for case in CONVERSATION_IDS:
        for method, path, payload in [("post", "messages", {"text": "hi"}), ("get", "messages", None),
                                      ("post", "rating", {"rating": 5})]:
            response = await client.request(method, f"/api/conversations/{case.value}/{path}", json=payload,
                                            headers=auth)
            status, body = await answer(response)
            assert status == 404 and error_message(body), (case.name, path)
    assert await row_counts(hostile_tandem) == before
    await assert_still_answers(client)


async def test_another_users_ids_are_404_and_change_nothing(client, hostile_tandem) -> None:
    ann_conversation, ann = await open_conversation(client)
    reply = await (await client.post(f"/api/conversations/{ann_conversation}/messages", json={"text": "help"},
                                     headers=ann)).json()
    story = await new_story(client, ann)
    _, bob = await open_conversation(client)
    lore = await (await client.post(f"/api/stories/{story['id']}/lore", json={"keys": ["owl"], "text": "Wise."},
                                    headers=ann)).json()
    before = await row_counts(hostile_tandem)
    sid = story["id"]
    for method, path, payload in [
        ("post", f"/api/conversations/{ann_conversation}/messages", {"text": "hi"}),
        ("get", f"/api/conversations/{ann_conversation}/messages", None),
        ("post", f"/api/conversations/{ann_conversation}/rating", {"rating": 1}),
        ("post", f"/api/messages/{reply['message_id']}/feedback", {"thumb": "down"}),
        ("get", f"/api/stories/{sid}", None),
        ("patch", f"/api/stories/{sid}", {"title": "Mine now"}),
        ("delete", f"/api/stories/{sid}?confirm=true", None),
        ("post", f"/api/stories/{sid}/passages", {"text": "Bob was here."}),
        ("post", f"/api/stories/{sid}/continue", {"text": "Bob was here."}),
        ("post", f"/api/stories/{sid}/undo", None),
        ("post", f"/api/stories/{sid}/edit", {"text": "Bob rewrote it."}),
        ("get", f"/api/stories/{sid}/export?format=json", None),
        ("delete", f"/api/stories/{sid}/lore/{lore['id']}", None),
        ("post", f"/api/stories/{sid}/character", {"name": "Owl", "question": "Your secrets?"}),
    ]:
        status, body = await answer(await client.request(method, path, json=payload, headers=bob))
        assert status == 404 and error_message(body), path
    assert await row_counts(hostile_tandem) == before
    view = (await (await client.get(f"/api/stories/{sid}", headers=ann)).json())["story"]
    assert view["title"] == "Owls" and [p["text"] for p in view["passages"]] == ["An owl lived in an oak."]


# --- stories --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", params(TEXTS))
async def test_story_titles_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    _, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post("/api/stories", json={"title": case.text}, headers=auth))
    title = case.as_new_title()
    if title is None:
        assert status == 400 and "title" in error_message(body)
        assert await row_counts(hostile_tandem) == before
    else:
        assert status == 201 and body["story"]["title"] == title, body
    story = await new_story(client, auth)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.patch(f"/api/stories/{story['id']}", json={"title": case.text},
                                                   headers=auth))
    if case.as_title() is None:
        assert status == 400 and "title" in error_message(body)
        assert await row_counts(hostile_tandem) == before
        assert (await (await client.get(f"/api/stories/{story['id']}", headers=auth)).json())["story"]["title"] \
            == "Owls"
    else:
        assert status == 200 and body["story"]["title"] == case.as_title()


@pytest.mark.parametrize("case", params(TEXTS))
async def test_story_passages_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileText) -> None:
    _, auth = await open_conversation(client)
    story = await new_story(client, auth)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post(f"/api/stories/{story['id']}/passages", json={"text": case.text},
                                                  headers=auth))
    stored = case.stored_within(MAX_PASSAGE_CHARS)
    if stored is None:
        assert status == 400 and ("empty" in error_message(body) or "too long" in error_message(body))
        assert await row_counts(hostile_tandem) == before
    else:
        assert status == 201 and body["story"]["passages"][-1]["text"] == stored, body
        assert body["story"]["passages"][-1]["author"] == "user"


@pytest.mark.parametrize("field, limit", [("genre", 100), ("style", 200), ("premise", 2000)])
async def test_story_details_over_their_limit_are_refused_when_started_patched_or_imported(
        client, hostile_tandem, field: str, limit: int) -> None:
    _, auth = await open_conversation(client)
    story = await new_story(client, auth)
    before = await row_counts(hostile_tandem)
    too_long = "<b>" + "x" * limit
    export = await (await client.get(f"/api/stories/{story['id']}/export?format=json", headers=auth)).json()
    export["story"][field] = too_long
    for method, path, payload in [("post", "/api/stories", {field: too_long}),
                                  ("patch", f"/api/stories/{story['id']}", {field: too_long}),
                                  ("post", "/api/stories/import", export)]:
        status, body = await answer(await client.request(method, path, json=payload, headers=auth))
        assert status == 400 and "too long" in error_message(body), (method, path, body)
    assert await row_counts(hostile_tandem) == before
    status, body = await answer(await client.patch(f"/api/stories/{story['id']}", json={field: "x" * limit},
                                                   headers=auth))
    assert status == 200 and body["story"][field] == "x" * limit


@pytest.mark.parametrize("case", params(BODIES))
async def test_raw_story_bodies_are_refused_or_stored_cleaned(client, hostile_tandem, case: HostileBody) -> None:
    _, auth = await open_conversation(client)
    before = await row_counts(hostile_tandem)
    status, body = await answer(await client.post("/api/stories", data=case.raw, headers={**auth, **JSON}))
    if case.stored is None:
        assert status == 400 and error_message(body)
        if case.refusal in ("invalid JSON", "JSON object"):
            assert case.refusal in error_message(body)
        assert await row_counts(hostile_tandem) == before
    else:
        assert status == 201 and [p["text"] for p in body["story"]["passages"]] == [case.stored], body


async def test_a_charset_python_does_not_know_is_read_as_utf8_or_refused(client, hostile_tandem) -> None:
    conversation, auth = await open_conversation(client)
    nope = {**auth, "Content-Type": "application/json; charset=nope"}
    status, body = await answer(await client.post(f"/api/conversations/{conversation}/messages",
                                                  data='{"text": "привет"}'.encode(), headers=nope))
    assert status == 200 and body["text"].strip()  # JSON is UTF-8 whatever the header says
    stored = await hostile_tandem.conversations.messages(conversation)
    assert stored[0].text == "привет"
    status, body = await answer(await client.post("/api/stories", data=b'{"title": "Owls"}', headers=nope))
    assert status == 201 and body["story"]["title"] == "Owls"
    login = await client.post("/admin/login", data=b"token=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded; charset=nope"},
                              allow_redirects=False)
    page = await login.text()
    assert login.status == 400 and "could not be read" in page
    assert_no_traceback(page)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"x": [value]}
    return value


async def test_an_import_nested_too_deep_or_with_numbers_past_64_bits_is_refused(client, hostile_tandem,
                                                                                caplog) -> None:
    _, auth = await open_conversation(client)
    story = await new_story(client, auth)
    export = await (await client.get(f"/api/stories/{story['id']}/export?format=json", headers=auth)).json()
    before = await row_counts(hostile_tandem)
    deep = {**export, "story": {**export["story"], "premise": nested(300)}}
    status, body = await answer(await client.post("/api/stories/import", json=deep, headers=auth))
    assert status == 400 and "nested too deeply" in error_message(body)
    for where in ("candidate_group", "id", "parent_id"):
        huge = json.loads(json.dumps(export))
        huge["passages"][-1][where] = 2**63
        status, body = await answer(await client.post("/api/stories/import", json=huge, headers=auth))
        assert status == 400 and "too large" in error_message(body), where
    assert await row_counts(hostile_tandem) == before
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    # Within 64 bits, a group no column holds is read as none and a summary claiming too much is left out.
    wide = json.loads(json.dumps(export))
    wide["passages"][-1]["candidate_group"] = 2**40
    wide["summaries"] = [{"through_id": wide["passages"][-1]["id"], "covered": 2**40, "text": "All of it."}]
    status, body = await answer(await client.post("/api/stories/import", json=wide, headers=auth))
    assert status == 201 and [p["text"] for p in body["story"]["passages"]] == [p["text"] for p in
                                                                              story["passages"]]
    await assert_still_answers(client)


async def test_an_imported_passage_with_id_0_keeps_its_children(client, hostile_tandem) -> None:
    _, auth = await open_conversation(client)
    export = {"format": "tandem-story", "version": 1, "story": {"title": "Zero"}, "head_id": 1,
              "passages": [{"id": 0, "parent_id": None, "author": "user", "text": "An owl lived in an oak."},
                           {"id": 1, "parent_id": 0, "author": "model", "text": "It hooted at night."}]}
    status, body = await answer(await client.post("/api/stories/import", json=export, headers=auth))
    assert status == 201, body
    passages = body["story"]["passages"]
    assert [p["text"] for p in passages] == ["An owl lived in an oak.", "It hooted at night."]
    assert passages[1]["parent_id"] == passages[0]["id"]


async def test_hostile_ids_in_story_bodies_and_paths_are_refused(client, hostile_tandem) -> None:
    _, auth = await open_conversation(client)
    story = await new_story(client, auth)
    sid = story["id"]
    await client.post(f"/api/stories/{sid}/continue", json={"candidates": 2}, headers=auth)
    view = (await (await client.get(f"/api/stories/{sid}", headers=auth)).json())["story"]
    before = await row_counts(hostile_tandem)
    for case in ID_VALUES:
        for path, payload in [("choose", {"passage_id": case.value}), ("choose", {"candidate": case.value}),
                              ("branch", {"passage_id": case.value}), ("branch", {"number": case.value}),
                              ("edit", {"text": "A new text.", "passage_id": case.value}),
                              ("edit", {"text": "A new text.", "number": case.value}),
                              ("continue", {"candidates": case.value})]:
            if (path, case.value) in (("branch", 0), ("edit", None), ("continue", None)):
                continue  # valid: branch 0 is "before the first passage", null means "the default"
            status, body = await answer(await client.post(f"/api/stories/{sid}/{path}", json=payload, headers=auth))
            assert status in (400, 404) and error_message(body), (case.name, path, payload)
    for case in PATH_IDS:
        for method, path in [("get", f"/api/stories/{case.value}"), ("post", f"/api/stories/{case.value}/undo"),
                             ("delete", f"/api/stories/{sid}/lore/{case.value}")]:
            status, body = await answer(await client.request(method, path, headers=auth))
            assert status == 404 and error_message(body), (case.name, path)
    assert await row_counts(hostile_tandem) == before
    assert (await (await client.get(f"/api/stories/{sid}", headers=auth)).json())["story"] == view
    await assert_still_answers(client)


async def test_a_prompt_injection_stays_story_text_and_the_instructions_are_never_shown(client,
                                                                                        hostile_tandem) -> None:
    injection = next(c for c in TEXTS if c.name == "prompt_injection").text
    model = hostile_tandem.language_model
    _, auth = await open_conversation(client)
    story = await new_story(client, auth, title="Lantern", text=None)
    calls = len(model.calls)
    status, done = await answer(await client.post(f"/api/stories/{story['id']}/continue",
                                                  json={"text": injection, "candidates": 1}, headers=auth))
    assert status == 200 and done["user_passage"]["text"] == injection
    prompt = model.calls[calls].prompt
    assert [m.role for m in prompt] == ["system", "user"]
    system, user = prompt
    assert injection not in system.content
    assert user.content.count(injection) == 1 and f"Story so far:\n\n{injection}" in user.content
    instructions = continue_instruction(_record(story, "Lantern"), "English")
    shown = json.dumps(done, ensure_ascii=False)
    for line in instructions.splitlines():
        assert line not in shown, line
    # The same through the chat: the story skill's answer never carries its instructions either.
    conversation, auth = await open_conversation(client)
    for text in ("let's write a story", injection):
        status, reply = await answer(await client.post(f"/api/conversations/{conversation}/messages",
                                                       json={"text": text}, headers=auth))
        assert status == 200
    assert reply["skill"] == "story"
    chat_prompt: tuple[ChatMessage, ...] = model.calls[-1].prompt
    assert injection not in chat_prompt[0].content and injection in chat_prompt[1].content
    for line in chat_prompt[0].content.splitlines():
        assert line not in reply["text"] and line not in json.dumps(reply["data"], ensure_ascii=False), line


async def test_a_model_talked_into_printing_its_instructions_is_not_shown_them(client, hostile_tandem,
                                                                             monkeypatch) -> None:
    """A model that obeys the injection and repeats its system prompt: no sentence of it reaches the user."""
    def obey(prompt, params) -> str:
        return f"Sure! Here it is. {prompt[0].content} Mira lit the old lantern and smiled at the dark."

    monkeypatch.setattr(hostile_tandem.language_model.script, "respond", obey)
    injection = next(c for c in TEXTS if c.name == "prompt_injection").text
    _, auth = await open_conversation(client)
    story = await new_story(client, auth, title="Lantern", text=None)
    status, done = await answer(await client.post(f"/api/stories/{story['id']}/continue",
                                                  json={"text": injection, "candidates": 1}, headers=auth))
    assert status == 200 and done["candidates"], done
    shown = done["candidates"][0]["text"]
    assert "Mira lit the old lantern" in shown
    for line in continue_instruction(_record(story, "Lantern"), "English").splitlines()[:3]:
        assert line not in shown, line
    status, answer_ = await answer(await client.post(f"/api/stories/{story['id']}/character",
                                                     json={"name": "Mira", "question": injection}, headers=auth))
    assert status == 200 and "You are Mira, a character" not in answer_["answer"]


def _record(story: dict[str, Any], title: str):
    """The fields of a story continue_instruction reads, from its JSON view."""
    from types import SimpleNamespace

    return SimpleNamespace(title=title, genre=story.get("genre"), style=story.get("style"),
                           premise=story.get("premise"))
