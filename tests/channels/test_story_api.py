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
    # What was shown before the tab closed is what is stored (deltas now come a few words at a time).
    assert stored[0]["text"].startswith(first.decode().split('"text": "', 1)[1].split('"', 1)[0].strip())
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


# --- the writing studio: swipes, ratings, the context viewer, lore switches -----------------

async def story_with_candidates(client, auth, count: int = 3, **body) -> tuple[int, list[int]]:
    sid = (await call(client, "POST", "/api/stories", auth, 201,
                      json={"text": "An owl lived in an oak.", **body}))["story"]["id"]
    done = await call(client, "POST", f"/api/stories/{sid}/continue", auth, json={"candidates": count})
    return sid, [c["id"] for c in done["candidates"]]


async def swipe(client, auth, sid: int, passage_id: int, direction: int) -> dict:
    return (await call(client, "POST", f"/api/stories/{sid}/swipe", auth,
                       json={"passage_id": passage_id, "direction": direction}))["story"]


async def test_swiping_moves_between_versions_and_swiping_back_restores_the_branch(client) -> None:
    auth = await token(client)
    sid, (c1, c2, c3) = await story_with_candidates(client, auth)
    pending = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]["candidates"]
    assert [c["swipe"] for c in pending] == [{"index": i, "count": 3} for i in (1, 2, 3)]

    # From a candidate waiting to the next one: that one is the story now, chosen, and nothing waits.
    view = await swipe(client, auth, sid, c1, 1)
    assert [p["id"] for p in view["passages"]][1:] == [c2] and view["head_id"] == c2
    assert view["candidates"] == [] and view["passages"][1]["chosen"]
    assert view["passages"][1]["swipe"] == {"index": 2, "count": 3}
    assert view["passages"][0]["swipe"] == {"index": 1, "count": 1}
    await call(client, "POST", f"/api/stories/{sid}/passages", auth, 201, json={"text": "Night fell."})

    view = await swipe(client, auth, sid, c2, 1)
    assert [p["text"] for p in view["passages"]] == ["An owl lived in an oak.", "The owl said word 3."]
    assert view["passages"][1]["swipe"] == {"index": 3, "count": 3}
    view = await swipe(client, auth, sid, c3, -1)
    assert [p["text"] for p in view["passages"]] == ["An owl lived in an oak.", "The owl said word 2.",
                                                     "Night fell."], "what followed c2 comes back"
    view = await swipe(client, auth, sid, c2, -1)
    assert [p["id"] for p in view["passages"]][1:] == [c1]
    view = await swipe(client, auth, sid, c1, 1)
    assert [p["text"] for p in view["passages"]][-1] == "Night fell."
    tree = (await call(client, "GET", f"/api/stories/{sid}/tree", auth))["passages"]
    assert len(tree) == 5, "swiping never deletes a passage"
    assert {p["id"]: p["chosen"] for p in tree if p["candidate"]} == {c1: True, c2: True, c3: True}


async def test_bad_swipes_are_refused_clearly_and_change_nothing(client) -> None:
    auth, other = await token(client), await token(client)
    sid, (c1, c2, c3) = await story_with_candidates(client, auth)
    await swipe(client, auth, sid, c1, 1)  # the story is now the user's passage and c2
    before = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]
    for body, message in [
        ({"passage_id": c2, "direction": 2}, "Swipe by -1 (back) or 1 (forward)."),
        ({"passage_id": c2, "direction": 0}, "Swipe by -1 (back) or 1 (forward)."),
        ({"passage_id": c2, "direction": "next"}, "`direction` must be a whole number."),
        ({"passage_id": c2, "direction": True}, "`direction` must be a whole number."),
        ({"passage_id": str(c2), "direction": 1}, "`passage_id` must be a whole number."),
        ({"passage_id": c2}, "Give `passage_id` and `direction` (-1 or 1)."),
        ({"direction": 1}, "Give `passage_id` and `direction` (-1 or 1)."),
        ({"passage_id": 999_999, "direction": 1}, "Passage 999999 is not in the current story."),
        # c3 is stored, but not in the story now (and not waiting): it cannot be swiped from.
        ({"passage_id": c3, "direction": -1}, f"Passage {c3} is not in the current story."),
        ({"passage_id": before["passages"][0]["id"], "direction": 1}, "There is no other version that way."),
    ]:
        error = await call(client, "POST", f"/api/stories/{sid}/swipe", auth, 400, json=body)
        assert error["error"] == {"code": "invalid", "message": message}
    await call(client, "POST", f"/api/stories/{sid}/swipe", other, 404, json={"passage_id": c2, "direction": 1})
    await call(client, "POST", "/api/stories/999999/swipe", auth, 404, json={"passage_id": c2, "direction": 1})
    after = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]
    assert after["passages"] == before["passages"] and after["head_id"] == before["head_id"]
    # At the last version there is nothing further that way either.
    await swipe(client, auth, sid, c2, 1)
    error = await call(client, "POST", f"/api/stories/{sid}/swipe", auth, 400, json={"passage_id": c3, "direction": 1})
    assert error["error"]["message"] == "There is no other version that way."


async def test_edited_versions_are_swiped_too_and_refusals_are_in_the_storys_language(client) -> None:
    auth = await token(client)
    story = (await call(client, "POST", "/api/stories", auth, 201,
                        json={"language": "ru", "text": "Жила-была сова."}))["story"]
    sid, original = story["id"], story["passages"][0]["id"]
    view = (await call(client, "POST", f"/api/stories/{sid}/edit", auth, json={"text": "Жила-была старая сова."}))
    edited = view["story"]["passages"][0]
    assert edited["swipe"] == {"index": 2, "count": 2}
    view = await swipe(client, auth, sid, edited["id"], -1)
    assert [p["text"] for p in view["passages"]] == ["Жила-была сова."] and not view["passages"][0]["chosen"]
    error = await call(client, "POST", f"/api/stories/{sid}/swipe", auth, 400,
                       json={"passage_id": original, "direction": 3})
    assert error["error"]["message"] == "Листать можно на -1 (назад) или на 1 (вперёд)."
    error = await call(client, "POST", f"/api/stories/{sid}/swipe", auth, 400,
                       json={"passage_id": original, "direction": -1})
    assert error["error"]["message"] == "В эту сторону других вариантов нет."
    error = await call(client, "POST", f"/api/stories/{sid}/swipe", auth, 400,
                       json={"passage_id": edited["id"], "direction": 1})
    assert error["error"]["message"] == f"Отрывка {edited['id']} нет в текущей истории."
    view = await swipe(client, auth, sid, original, 1)
    assert [p["text"] for p in view["passages"]] == ["Жила-была старая сова."]


async def test_a_passage_is_rated_and_its_rating_taken_back(client) -> None:
    auth = await token(client)
    sid, (c1, c2) = await story_with_candidates(client, auth, 2)
    first = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]["passages"][0]
    assert first["rating"] is None
    rating = f"/api/stories/{sid}/passages/{first['id']}/rating"
    rated = (await call(client, "POST", rating, auth, json={"value": 1}))["passage"]
    assert (rated["id"], rated["rating"], rated["text"]) == (first["id"], 1, "An owl lived in an oak.")
    assert (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]["passages"][0]["rating"] == 1
    assert (await call(client, "POST", rating, auth, json={"value": -1}))["passage"]["rating"] == -1
    # A candidate still waiting can be rated too.
    await call(client, "POST", f"/api/stories/{sid}/passages/{c2}/rating", auth, json={"value": -1})
    view = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]
    assert [c["rating"] for c in view["candidates"]] == [None, -1]
    assert (await call(client, "POST", rating, auth, json={"value": 0}))["passage"]["rating"] is None
    tree = (await call(client, "GET", f"/api/stories/{sid}/tree", auth))["passages"]
    assert {p["id"]: p["rating"] for p in tree} == {first["id"]: None, c1: None, c2: -1}


async def test_bad_ratings_are_refused_clearly_and_change_nothing(client) -> None:
    auth, other = await token(client), await token(client)
    sid, (c1,) = await story_with_candidates(client, auth, 1)
    elsewhere = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "Another."}))["story"]
    rating = f"/api/stories/{sid}/passages/{c1}/rating"
    await call(client, "POST", rating, auth, json={"value": 1})
    for body, message in [
        ({"value": None}, "Give `value`: 1, -1 or 0."),
        ({}, "Give `value`: 1, -1 or 0."),
        ({"value": 2}, "Rate a passage 1 (good), -1 (bad) or 0 (no rating)."),
        ({"value": -5}, "Rate a passage 1 (good), -1 (bad) or 0 (no rating)."),
        ({"value": True}, "`value` must be a whole number."),
        ({"value": "1"}, "`value` must be a whole number."),
        ({"value": 0.5}, "`value` must be a whole number."),
    ]:
        error = await call(client, "POST", rating, auth, 400, json=body)
        assert error["error"] == {"code": "invalid", "message": message}
    for path, who in [
        (f"/api/stories/{sid}/passages/999999/rating", auth),
        (f"/api/stories/{sid}/passages/abc/rating", auth),
        (f"/api/stories/{sid}/passages/{2**70}/rating", auth),
        (f"/api/stories/{elsewhere['id']}/passages/{c1}/rating", auth),  # a passage of another story
        (f"/api/stories/{sid}/passages/{elsewhere['passages'][0]['id']}/rating", auth),
        (rating, other),  # another user's story
    ]:
        error = await call(client, "POST", path, who, 404, json={"value": -1})
        assert error["error"]["code"] == "not_found"
    tree = (await call(client, "GET", f"/api/stories/{sid}/tree", auth))["passages"]
    assert [p["rating"] for p in tree if p["id"] == c1] == [1]
    assert (await call(client, "GET", f"/api/stories/{elsewhere['id']}", auth))["story"]["passages"][0]["rating"] is None
    error = await call(client, "POST", rating, {**auth, "Accept-Language": "ru"}, 400, json={"value": 7})
    assert error["error"]["message"] == "Rate a passage 1 (good), -1 (bad) or 0 (no rating)."  # the story's language
    ru = (await call(client, "POST", "/api/stories", auth, 201, json={"language": "ru", "text": "Жила-была сова."}))
    ru_rating = f"/api/stories/{ru['story']['id']}/passages/{ru['story']['passages'][0]['id']}/rating"
    error = await call(client, "POST", ru_rating, auth, 400, json={"value": 7})
    assert error["error"]["message"] == "Оценка отрывка: 1 (хорошо), -1 (плохо) или 0 (без оценки)."


def owl_model(context_window: int = 2048) -> FakeLanguageModel:
    counter = iter(range(1, 10_000))

    def respond(prompt, params) -> str:
        if prompt[0].content.startswith("Summarise"):
            return "Summary: the owls flew far."
        return f"The owl said word {next(counter)}."

    return FakeLanguageModel(script=FakeScript(respond=respond), context_window=context_window)


async def test_the_context_shows_the_exact_prompt_its_sections_and_each_lore_decision(settings) -> None:
    model = owl_model()
    async with served(settings, model) as client:
        auth = await token(client)
        sid = (await call(client, "POST", "/api/stories", auth, 201,
                          json={"text": "An owl lived in an oak.", "settings": {"candidates": 1}}))["story"]["id"]
        await call(client, "PATCH", f"/api/stories/{sid}", auth,
                   json={"memory": "It is winter.", "author_note": "Keep it gentle."})
        await call(client, "POST", f"/api/stories/{sid}/passages", auth, 201, json={"text": "The owl watched the moon."})
        owl = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201,
                         json={"keys": ["owl"], "text": "Owls are wise."})
        oak = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201,
                         json={"keys": ["oak"], "text": "The oak is ancient.", "enabled": False})
        river = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201,
                           json={"keys": ["river"], "text": "The river is cold."})
        calls = len(model.calls)
        before = (await call(client, "GET", f"/api/stories/{sid}", auth))["story"]

        context = await call(client, "GET", f"/api/stories/{sid}/context", auth)
        assert len(model.calls) == calls, "looking at the context asks the model nothing"
        assert (await call(client, "GET", f"/api/stories/{sid}", auth))["story"] == before
        assert [m["role"] for m in context["messages"]] == ["system", "user"]
        assert [s["name"] for s in context["sections"]] == ["instruction", "memory", "lore", "passages",
                                                             "author_note", "task"]
        assert all(s["tokens"] == len(s["text"].split()) for s in context["sections"])  # the fake counts words
        system, user = (m["content"] for m in context["messages"])
        assert "It is winter." in system and "- Owls are wise." in user and "Keep it gentle." in user
        assert "The oak is ancient." not in system + user and "The river is cold." not in system + user
        assert context["tokens"] == {"window": 2048, "answer": 120, "budget": 2048 - 120,
                                     "prompt": sum(len(m["content"].split()) + 8 for m in context["messages"]) + 8}
        assert context["passages"] == {"in_prompt": 2, "left_out": 0, "summarised": 0}
        assert context["summary_pending"] is False
        assert context["lore"] == [
            {"id": owl["id"], "keys": ["owl"], "text": "Owls are wise.", "enabled": True, "tokens": 3,
             "included": True, "reason": '"owl" is in the last 3 passages'},
            {"id": oak["id"], "keys": ["oak"], "text": "The oak is ancient.", "enabled": False, "tokens": 4,
             "included": False, "reason": "switched off"},
            {"id": river["id"], "keys": ["river"], "text": "The river is cold.", "enabled": True, "tokens": 4,
             "included": False, "reason": "none of its keys is in the last 3 passages"},
        ]
        # What the context showed is exactly what the model is given for the next passage.
        await call(client, "POST", f"/api/stories/{sid}/continue", auth, json={})
        assert [{"role": m.role, "content": m.content} for m in model.calls[-1].prompt] == context["messages"]

        # Switched on, the oak's entry reaches the prompt.
        await call(client, "PATCH", f"/api/stories/{sid}/lore/{oak['id']}", auth, json={"enabled": True})
        await call(client, "POST", f"/api/stories/{sid}/passages", auth, 201, json={"text": "The oak creaked."})
        context = await call(client, "GET", f"/api/stories/{sid}/context", auth)
        assert [(entry["id"], entry["included"]) for entry in context["lore"]] == [
            (owl["id"], True), (oak["id"], True), (river["id"], False)]
        assert "- The oak is ancient." in context["messages"][1]["content"]
        other = await token(client)
        await call(client, "GET", f"/api/stories/{sid}/context", other, 404)


async def test_the_context_tells_when_passages_are_left_out_and_a_summary_is_due(settings) -> None:
    model = owl_model(context_window=400)
    async with served(settings, model) as client:
        auth = await token(client)
        sid = (await call(client, "POST", "/api/stories", auth, 201,
                          json={"settings": {"candidates": 1, "max_new_tokens": 40}}))["story"]["id"]
        for turn in range(30):
            await call(client, "POST", f"/api/stories/{sid}/passages", auth, 201,
                       json={"text": f"Turn {turn}: " + "the owl kept flying over the dark woods " * 2})
        context = await call(client, "GET", f"/api/stories/{sid}/context", auth)
        assert context["tokens"]["window"] == 400 and context["tokens"]["answer"] == 40
        assert context["tokens"]["prompt"] <= 400 - 40
        passages = context["passages"]
        assert passages["left_out"] > 0 and passages["in_prompt"] + passages["left_out"] == 30
        assert passages["summarised"] == 0 and context["summary_pending"] is True
        assert "summary" not in [s["name"] for s in context["sections"]]

        await call(client, "POST", f"/api/stories/{sid}/continue", auth, json={})  # summarises first
        context = await call(client, "GET", f"/api/stories/{sid}/context", auth)
        assert context["summary_pending"] is False
        assert "summary" in [s["name"] for s in context["sections"]]
        assert "Summary: the owls flew far." in context["messages"][1]["content"]
        passages = context["passages"]
        assert passages["summarised"] == passages["left_out"] > 0 and passages["in_prompt"] + passages["left_out"] == 31


async def test_lore_entries_are_edited_and_switched_off(client) -> None:
    auth, other = await token(client), await token(client)
    sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "An owl lived in an oak."}))["story"]["id"]
    owl = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201,
                     json={"keys": ["owl", "Hoot"], "text": "Owls are wise."})
    assert owl == {"id": owl["id"], "keys": ["owl", "Hoot"], "text": "Owls are wise.", "enabled": True, "tokens": 3}
    oak = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 201,
                     json={"keys": "oak, acorn", "text": "The oak is ancient.", "enabled": False})
    assert (oak["keys"], oak["enabled"], oak["tokens"]) == (["oak", "acorn"], False, 4)
    entry = f"/api/stories/{sid}/lore/{owl['id']}"

    off = await call(client, "PATCH", entry, auth, json={"enabled": False})
    assert off == {**owl, "enabled": False}, "only the switch changed"
    edited = await call(client, "PATCH", entry, auth, json={"text": "Owls are very wise."})
    assert (edited["text"], edited["tokens"], edited["enabled"], edited["keys"]) == (
        "Owls are very wise.", 4, False, ["owl", "Hoot"])
    edited = await call(client, "PATCH", entry, auth, json={"keys": "owl, Hoot, Strix", "enabled": True})
    assert (edited["keys"], edited["enabled"]) == (["owl", "Hoot", "Strix"], True)
    listed = (await call(client, "GET", f"/api/stories/{sid}/lore", auth))["lore"]
    assert listed == [edited, oak]

    for body, message in [
        ({"colour": "red"}, "Unknown field 'colour'."),
        ({"enabled": "no"}, "`enabled` must be true or false."),
        ({"enabled": 0}, "`enabled` must be true or false."),
        ({"keys": [1, 2]}, "`keys` must be a list of keywords."),
        ({"keys": 7}, "`keys` must be a list of keywords."),
        ({"text": 5}, "`text` must be a string."),
    ]:
        error = await call(client, "PATCH", entry, auth, 400, json=body)
        assert error["error"] == {"code": "invalid", "message": message}
    for body in ({"keys": []}, {"keys": " , "}, {"text": "   "}, {"keys": ["x" * 400]}):
        error = await call(client, "PATCH", entry, auth, 400, json=body)
        assert error["error"]["code"] == "invalid"
        assert error["error"]["message"] in (
            "A lore entry needs keywords and text, e.g. /lore dragon, Smaug: an old red dragon.",
            "That lore entry is too long.")
    error = await call(client, "POST", f"/api/stories/{sid}/lore", auth, 400,
                       json={"keys": ["bat"], "text": "A bat.", "enabled": "yes"})
    assert error["error"]["message"] == "`enabled` must be true or false."
    elsewhere = (await call(client, "POST", "/api/stories", auth, 201, json={"title": "Other"}))["story"]["id"]
    for path, who in [(f"/api/stories/{sid}/lore/999999", auth), (f"/api/stories/{sid}/lore/abc", auth),
                      (f"/api/stories/{elsewhere}/lore/{owl['id']}", auth), (entry, other)]:
        await call(client, "PATCH", path, who, 404, json={"enabled": False})
    assert (await call(client, "GET", f"/api/stories/{sid}/lore", auth))["lore"] == [edited, oak]


async def conversation(client: TestClient) -> tuple[dict[str, str], str]:
    body = await (await client.post("/api/conversations")).json()
    return {"Authorization": f"Bearer {body['token']}"}, body["conversation_id"]


async def new_story_language(client, auth, headers: dict | None = None, **body) -> str:
    story = await call(client, "POST", "/api/stories", {**auth, **(headers or {})}, 201, json=body)
    return story["story"]["language"]


async def test_a_new_story_without_a_language_is_in_the_language_the_user_talks_in(client) -> None:
    auth, conversation_id = await conversation(client)
    # No conversation has a language yet: the browser's (the first one, when Tandem speaks it).
    assert await new_story_language(client, auth) == "en"
    assert await new_story_language(client, auth, {"Accept-Language": "ru-RU,ru;q=0.9"}) == "ru"
    assert await new_story_language(client, auth, {"Accept-Language": "de-DE,ru;q=0.5"}) == "en"
    response = await client.post(f"/api/conversations/{conversation_id}/messages", headers=auth,
                                 json={"text": "Привет! Как у тебя сегодня дела?"})
    assert response.status == 200
    # Now the conversation's language wins over the header; a language given wins over both.
    assert await new_story_language(client, auth, {"Accept-Language": "en-US"}) == "ru"
    assert await new_story_language(client, auth) == "ru"
    assert await new_story_language(client, auth, {"Accept-Language": "ru"}, language="en") == "en"
    # A language Tandem does not write in is as if none were given.
    assert await new_story_language(client, auth, {"Accept-Language": "en-US"}, language="de") == "ru"
    ru_story = await call(client, "POST", "/api/stories", auth, 201, json={})
    assert ru_story["story"]["title"] == "История без названия"

    english, english_conversation = await conversation(client)
    response = await client.post(f"/api/conversations/{english_conversation}/messages", headers=english,
                                 json={"text": "Hello! How are you doing today?"})
    assert response.status == 200
    assert await new_story_language(client, english, {"Accept-Language": "ru"}) == "en"


def ranked_model(texts: list[str]) -> FakeLanguageModel:
    """Answers `texts` in turn (a list the test may extend), then a calm line."""
    return FakeLanguageModel(script=FakeScript(respond=lambda p, q: texts.pop(0) if texts else "The owl slept."))


OWL_STORY = "An owl with red eyes lived in an oak."
BLUE, BLUE_AGAIN, RED = "The owl blinked its blue eyes.", "The owl shut its blue eyes.", "The owl blinked its red eyes."
EYES = "colour of 'eye': blue here, red in the story"


async def test_the_done_answer_ranks_candidates_and_notes_what_the_checks_found(settings) -> None:
    texts: list[str] = []
    async with served(settings, ranked_model(texts)) as client:
        auth = await token(client)
        sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": OWL_STORY}))["story"]["id"]
        # Candidate 1 contradicts the story (blue eyes), is written again, and still does; candidate 2 does not.
        texts += [BLUE, BLUE_AGAIN, RED]
        done = await call(client, "POST", f"/api/stories/{sid}/continue", auth, json={"candidates": 2})
        first, second = done["candidates"]
        assert (first["text"], second["text"]) == (BLUE_AGAIN, RED)
        assert first["notes"] == [EYES] and second["notes"] == []
        assert done["ranked"] == [second["id"], first["id"]]
        assert [c["swipe"] for c in done["story"]["candidates"]] == [{"index": 1, "count": 2},
                                                                    {"index": 2, "count": 2}]
        assert first["rating"] is None and first["candidate_number"] == 1

        # The same over SSE: the redone candidate is cleared with a reset delta, and `done` ranks.
        texts += [BLUE, BLUE_AGAIN, RED]
        raw = await call(client, "POST", f"/api/stories/{sid}/retry", {**auth, "Accept": "text/event-stream"},
                         json={"candidates": 2})
        events = sse_events(raw)
        assert any(name == "delta" and data.get("reset") and data["candidate"] == 1 for name, data in events)
        assert not any(name == "delta" and data.get("reset") and data["candidate"] == 2 for name, data in events)
        stored = [data["passage"] for name, data in events if name == "candidate"]
        assert [p["text"] for p in stored] == [BLUE_AGAIN, RED] and all(p["rating"] is None for p in stored)
        name, data = events[-1]
        assert name == "done" and data["ranked"] == [stored[1]["id"], stored[0]["id"]]
        assert [c["notes"] for c in data["candidates"]] == [[EYES], []]
