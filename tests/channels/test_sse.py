"""SseStream over real HTTP: heartbeats while the source is quiet, a client that left is noticed
without a write, and a story passage is kept when its client leaves while the model thinks."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import sse as sse_module
from bot.channels.sse import SseStream
from bot.models.fake import FakeLanguageModel
from tests.channels.test_story_api import call, passages_of, served, token


def quiet_source(started: asyncio.Event, stopped: asyncio.Event, pieces=("one",)):
    """Yields `pieces`, then waits for ever (a model thinking); `stopped` is set when it is cancelled."""
    async def source():
        try:
            for piece in pieces:
                yield piece
            started.set()
            await asyncio.Event().wait()
        finally:
            stopped.set()
    return source()


def as_in_production(client: TestClient) -> TestClient:
    """aiohttp's TestServer cancels a handler whose client left; Tandem's server (an AppRunner with
    the default handler_cancellation=False) does not, so the handler must notice it by itself."""
    client.server.runner.server.handler_cancellation = False
    return client


@pytest.fixture
def quick_checks(monkeypatch):
    monkeypatch.setattr(sse_module, "CLIENT_CHECK_S", 0.05)
    monkeypatch.setattr(sse_module, "HEARTBEAT_S", 0.2)


async def relay_server(started, stopped, result: dict) -> TestClient:
    async def handler(request):
        sse = await SseStream(request).open()
        async for piece in sse.relay(quiet_source(started, stopped)):
            await sse.send("delta", {"text": piece})
        result["client_left"] = sse.client_left
        return sse.response

    app = web.Application()
    app.router.add_get("/events", handler)
    return TestClient(TestServer(app))  # made production-like once started (as_in_production)


async def test_a_quiet_stream_sends_heartbeats_as_comments(quick_checks) -> None:
    started, stopped, result = asyncio.Event(), asyncio.Event(), {}
    async with await relay_server(started, stopped, result) as client:
        as_in_production(client)
        response = await client.get("/events")
        assert await response.content.readuntil(b"\n\n") == 'event: delta\ndata: {"text": "one"}\n\n'.encode()
        # Nothing comes from the source now; the stream stays alive with comment lines, which
        # EventSource and the widget's parser skip.
        assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10) == b": keep-alive\n\n"
        assert await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10) == b": keep-alive\n\n"
        response.close()
        await asyncio.wait_for(stopped.wait(), 10)


async def test_a_client_that_left_is_noticed_without_a_write(quick_checks, monkeypatch) -> None:
    monkeypatch.setattr(sse_module, "HEARTBEAT_S", 3600.0)  # no write can find it: only the connection check
    started, stopped, result = asyncio.Event(), asyncio.Event(), {}
    async with await relay_server(started, stopped, result) as client:
        as_in_production(client)
        response = await client.get("/events")
        await response.content.readuntil(b"\n\n")
        await asyncio.wait_for(started.wait(), 10)
        response.close()
        # The source (a generation, in the story API) is cancelled, not left waiting for ever.
        await asyncio.wait_for(stopped.wait(), 10)
        for _ in range(200):
            if "client_left" in result:
                break
            await asyncio.sleep(0.01)
        assert result == {"client_left": True}


class ThinkingModel(FakeLanguageModel):
    """Writes one sentence and the start of the next, then thinks for ever."""

    def stream(self, prompt, params, *, cache_key=None):
        async def pieces():
            for word in "The owl flew home over the dark hill. Then it".split(" "):
                yield word + " "
            await asyncio.Event().wait()
        return pieces()


async def test_a_story_client_that_leaves_while_the_model_thinks_keeps_the_passage(settings, quick_checks,
                                                                                   monkeypatch) -> None:
    from skills.story import StorySkill

    monkeypatch.setattr(sse_module, "HEARTBEAT_S", 3600.0)
    monkeypatch.setattr(StorySkill, "time_budget_s", 3600.0)  # no budget ends it: only the client leaving
    async with served(settings, ThinkingModel()) as client:
        as_in_production(client)
        auth = await token(client)
        sid = (await call(client, "POST", "/api/stories", auth, 201, json={"text": "An owl lived in an oak."})
               )["story"]["id"]
        response = await client.post(f"/api/stories/{sid}/continue", headers={**auth, "Accept": "text/event-stream"},
                                     json={"candidates": 1})
        shown = ""
        while "hill." not in shown:
            event = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)).decode()
            assert event.startswith("event: delta")
            shown += event.split('"text": "', 1)[1].split('"', 1)[0]
        response.close()  # the tab is closed while the model is still thinking: nothing more is written
        stored = []
        for _ in range(400):
            stored = [p for p in await passages_of(client, auth, sid) if p["author"] == "model"]
            if stored:
                break
            await asyncio.sleep(0.025)
        assert len(stored) == 1 and stored[0]["status"] == "incomplete"
        assert stored[0]["text"].startswith("The owl flew home over the dark hill.")
