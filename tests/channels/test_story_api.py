"""The story endpoints through aiohttp's test client: a whole story, SSE streaming, and every refusal."""

from __future__ import annotations

import contextlib
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_app
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.server import init_app


@contextlib.asynccontextmanager
async def served(settings, model: FakeLanguageModel):
    """A test client of Tandem built from `settings` with `model` as its language model."""
    tandem = await build_app(settings, language_model=model)
    try:
        async with TestClient(TestServer(init_app(tandem))) as test_client:
            yield test_client
    finally:
        await tandem.close()


@pytest.fixture
async def client(settings):
    counter = iter(range(1, 10_000))
    model = FakeLanguageModel(script=FakeScript(respond=lambda p, q: f"The owl said word {next(counter)}."))
    async with served(settings, model) as test_client:
        yield test_client


async def token(client: TestClient) -> dict[str, str]:
    body = await (await client.post("/api/conversations")).json()
    return {"Authorization": f"Bearer {body['token']}"}


async def call(client, method: str, path: str, auth, status: int = 200, **kwargs):
    response = await client.request(method, path, headers=auth, **kwargs)
    assert response.status == status, await response.text()
    return await response.json() if response.content_type == "application/json" else await response.text()


def sse_events(raw: str) -> list[tuple[str, dict]]:
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_whole_story_through_the_api(client) -> None:
    auth = await token(client)
    story = (await call(client, "POST", "/api/stories", auth, 201,
                        json={"title": "Owls", "genre": "fable", "text": "An owl lived in an oak."}))["story"]
    sid = story["id"]
    assert story["passages"][0]["author"] == "user"
    done = await call(client, "POST", f"/api/stories/{sid}/continue", auth, json={"candidates": 2})
    assert [c["text"] for c in done["candidates"]] == ["The owl said word 1.", "The owl said word 2."]
    view = (await call(client, "POST", f"/api/stories/{sid}/choose", auth, json={"candidate": 2}))["story"]
    assert [p["author"] for p in view["passages"]] == ["user", "model"]
    await call(client, "POST", f"/api/stories/{sid}/retry", auth, json={"candidates": 1})
    view = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]
    assert view["passages"][-1]["text"] == "The owl said word 3."
    view = (await call(client, "POST", f"/api/stories/{sid}/undo", auth))["story"]
    assert len(view["passages"]) == 1 and view["can_redo"]
    view = (await call(client, "POST", f"/api/stories/{sid}/redo", auth))["story"]
    view = (await call(client, "POST", f"/api/stories/{sid}/edit", auth,
                       json={"number": 2, "text": "The owl hooted."}))["story"]
    assert view["passages"][-1]["author"] == "edited" and view["passages"][-1]["author_label"] == "model, edited by you"
    view = (await call(client, "POST", f"/api/stories/{sid}/branch", auth, json={"number": 1}))["story"]
    assert len(view["passages"]) == 1
    await call(client, "POST", f"/api/stories/{sid}/passages", auth, 201, json={"text": "Night fell."})
    settings = (await call(client, "PATCH", f"/api/stories/{sid}/settings", auth, json={"temperature": 0.3}))
    assert settings["settings"]["temperature"] == 0.3
    await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201, json={"keys": ["owl"], "text": "Owls are wise."})
    await call(client, "PATCH", f"/api/stories/{sid}", auth, json={"title": "Owl Tales", "memory": "It is winter."})
    answer = await call(client, "POST", f"/api/stories/{sid}/character", auth,
                        json={"name": "Owl", "question": "Who are you?"})
    assert answer["name"] == "Owl" and answer["answer"]
    tree = (await call(client, "GET", f"/api/stories/{sid}/tree", auth))["passages"]
    assert len(tree) == 6
    markdown = await call(client, "GET", f"/api/stories/{sid}/export?format=md", auth)
    assert markdown.startswith("# Owl Tales") and "**[2] you**\n\nNight fell." in markdown
    exported = await call(client, "GET", f"/api/stories/{sid}/export?format=json", auth)
    imported = (await call(client, "POST", "/api/stories/import", auth, 201, json=exported))["story"]
    assert [p["text"] for p in imported["passages"]] == ["An owl lived in an oak.", "Night fell."]
    listed = (await call(client, "GET", "/api/stories", auth))["stories"]
    assert {s["title"] for s in listed} == {"Owl Tales"} and len(listed) == 2
    refused = await call(client, "DELETE", f"/api/stories/{sid}", auth, 409)
    assert refused["error"]["code"] == "confirmation_required"
    response = await client.delete(f"/api/stories/{sid}?confirm=true", headers=auth)
    assert response.status == 204
    await call(client, "GET", f"/api/stories/{sid}", auth, 404)


async def test_a_passage_streams_as_server_sent_events(client) -> None:
    auth = await token(client)
    sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "Start."}))["story"]["id"]
    response = await client.post(f"/api/stories/{sid}/continue", json={"candidates": 2},
                                 headers={**auth, "Accept": "text/event-stream"})
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(await response.text())
    names = [name for name, _ in events]
    assert names[0] == "delta" and names[-1] == "done" and names.count("candidate") == 2
    first = "".join(data["text"] for name, data in events if name == "delta" and data["candidate"] == 1)
    assert first == "The owl said word 1."
    assert events[-1][1]["candidates"][1]["text"] == "The owl said word 2."


async def test_refusals_are_clear_and_change_nothing(client) -> None:
    auth, other = await token(client), await token(client)
    sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "Mine."}))["story"]["id"]
    for method, path, body, status in [
        ("GET", f"/api/stories/{sid}", None, 404),
        ("POST", f"/api/stories/{sid}/continue", {}, 404),
        ("DELETE", f"/api/stories/{sid}?confirm=true", None, 404),
    ]:
        await call(client, method, path, other, status, json=body)
    for path, body, message in [
        ("choose", {"candidate": 1}, "no candidates"),
        ("continue", {"text": "   "}, "empty"),
        ("continue", {"text": "x" * 5000}, "too long"),
        ("continue", {"candidates": 12}, "1 to 5"),
        ("redo", {}, "Nothing to redo"),
        ("branch", {"number": 9}, "no passage 9"),
        ("edit", {"text": 5}, "must be a string"),
    ]:
        error = await call(client, "POST", f"/api/stories/{sid}/{path}", auth, 400, json=body)
        assert message in error["error"]["message"]
    await call(client, "GET", "/api/stories/abc", auth, 404)
    await call(client, "GET", "/api/stories/999", auth, 404)
    await call(client, "GET", f"/api/stories/{sid}/export?format=pdf", auth, 400)
    await call(client, "GET", "/api/stories", {}, 401)
    await call(client, "POST", "/api/stories/import", auth, 400, json={"format": "nope"})
    view = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]
    assert [p["text"] for p in view["passages"]] == ["Mine."] and view["candidates"] == []


async def test_refusals_are_in_the_language_of_the_request(client) -> None:
    auth = await token(client)
    ru = {**auth, "Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}
    # No story named: the header's first language.
    error = await call(client, "POST", "/api/stories", ru, 400, json={"settings": 3})
    assert error["error"] == {"code": "invalid", "message": "`settings` должно быть объектом."}
    error = await call(client, "GET", "/api/stories/999", ru, 404)
    assert error["error"] == {"code": "not_found", "message": "такой истории нет"}
    english = await call(client, "GET", "/api/stories/999", {**auth, "Accept-Language": "de-DE,ru"}, 404)
    assert english["error"]["message"] == "no such story"  # a first language Tandem does not speak: English
    # A story named: its language, whatever the header says.
    en_story = (await call(client, "POST", "/api/stories", ru, 201, json={"language": "en"}))["story"]["id"]
    error = await call(client, "POST", f"/api/stories/{en_story}/undo", ru, 400)
    assert error["error"]["message"] == "Nothing to undo: the story is at its beginning."
    ru_story = (await call(client, "POST", "/api/stories", auth, 201, json={"language": "ru"}))["story"]["id"]
    error = await call(client, "POST", f"/api/stories/{ru_story}/undo", auth, 400)
    assert error["error"] == {"code": "invalid", "message": "Отменять нечего: история в самом начале."}
    error = await call(client, "POST", f"/api/stories/{ru_story}/choose", auth, 400, json={})
    assert error["error"]["message"] == "Укажи `candidate` (1, 2, ...) или `passage_id`."
    refused = await call(client, "DELETE", f"/api/stories/{ru_story}", auth, 409)
    assert refused["error"]["message"].startswith("Удаление «История без названия» нельзя отменить")
    # A new story's refusals are in the language it is started in.
    error = await call(client, "POST", "/api/stories", auth, 400, json={"language": "ru", "text": "x" * 5000})
    assert error["error"]["message"].startswith("Отрывок слишком длинный (символов: 5000")


async def test_a_patch_with_one_bad_field_changes_nothing(client) -> None:
    auth = await token(client)
    story = (await call(client, "POST", "/api/stories", auth, 201, json={"title": "Owls"}))["story"]
    path = f"/api/stories/{story['id']}"
    await call(client, "PATCH", path, auth, 400, json={"title": "Renamed", "memory": 42})
    await call(client, "PATCH", path, auth, 400, json={"title": "Renamed", "genre": "g" * 5000})
    kept = (await call(client, "GET", path, auth))["story"]
    assert kept["title"] == "Owls" and kept["memory"] == ""
    changed = (await call(client, "PATCH", path, auth, json={"title": "Renamed", "memory": "Owls hoot."}))["story"]
    assert changed["title"] == "Renamed" and changed["memory"] == "Owls hoot."


SLOW_STORY = " ".join(f"The owl flew over hill number {n}." for n in range(1, 60))


@pytest.fixture
async def slow_client(settings, monkeypatch):
    from skills.story import StorySkill

    monkeypatch.setattr(StorySkill, "time_budget_s", 1.5)  # the story API's budget is the story turn's
    model = FakeLanguageModel(script=FakeScript(outputs=(SLOW_STORY,), delay_s=0.05))
    async with served(settings, model) as test_client:
        yield test_client


async def passages_of(client, auth, story_id: int) -> list[dict]:
    return (await call(client, "GET", f"/api/stories/{story_id}/tree", auth))["passages"]


async def test_a_client_that_leaves_mid_passage_keeps_it_as_incomplete(slow_client) -> None:
    import asyncio

    client = slow_client
    auth = await token(client)
    sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "An owl lived in an oak."}))["story"]["id"]
    response = await client.post(f"/api/stories/{sid}/continue", headers={**auth, "Accept": "text/event-stream"},
                                 json={"candidates": 1})
    first = await response.content.readuntil(b"\n\n")
    assert first.startswith(b"event: delta")
    response.close()  # the tab is closed mid-passage
    for _ in range(100):
        stored = [p for p in await passages_of(client, auth, sid) if p["author"] == "model"]
        if stored:
            break
        await asyncio.sleep(0.05)
    assert len(stored) == 1 and stored[0]["status"] == "incomplete"
    assert stored[0]["text"].startswith("The owl flew over hill number 1.")
    assert not stored[0]["text"].endswith("number 59.")


async def test_a_passage_past_the_budget_ends_with_a_timeout_and_is_kept(slow_client) -> None:
    client = slow_client
    auth = await token(client)
    sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "An owl lived in an oak."}))["story"]["id"]
    raw = await call(client, "POST", f"/api/stories/{sid}/continue", {**auth, "Accept": "text/event-stream"},
                     json={"candidates": 1})
    events = sse_events(raw)
    assert events[0][0] == "delta" and events[-1] == ("error", {"code": "timeout", "message": events[-1][1]["message"]})
    stored = [p for p in await passages_of(client, auth, sid) if p["author"] == "model"]
    assert len(stored) == 1 and stored[0]["status"] == "incomplete" and stored[0]["text"]
    plain = await client.post(f"/api/stories/{sid}/retry", headers=auth, json={"candidates": 1})
    assert plain.status == 504 and (await plain.json())["error"]["code"] == "timeout"
