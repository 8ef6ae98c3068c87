"""Model backend faults through the real StoryService, StorySkill and HTTP endpoints: an OpenAI-compatible
server SIGKILLed in the middle of a streamed passage, one that fails at once, one that hangs past
lm.timeout_s or the turn budget. The passage so far is kept marked incomplete, the user is told, nothing
stored is lost, and once the backend is back the next continue works."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Tandem, build_app
from bot.models.config import LmConfig
from bot.server import init_app
from bot.settings import Settings
from tests.models.test_openai_backend import free_port

# The backend, as a process of its own that can be SIGKILLed. Each request streams sentences
# word by word; MODE picks the fault. Request n starts at a different sentence, so no passage
# repeats an earlier one (the passage filter drops repeated sentences).
STAND_IN = r'''
import asyncio, json, sys
from aiohttp import web

PORT, MODE, DELAY = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
SENTENCES = [
    "The fox crept to the edge of the wood.", "A lantern swung from the old gate.",
    "Somewhere an owl called twice.", "The fox waited with its ears high.", "Then the light went out.",
    "Rain began to tap on the leaves.", "A door creaked in the empty farmhouse.", "The wind smelled of smoke.",
    "Far away a dog barked once.", "The moon slid behind a cloud.", "The fox took one careful step.",
    "Nobody answered the knock.",
]
served = 0


def sse(piece):
    event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    return f"data: {json.dumps(event)}\n\n".encode()


async def models(request):
    return web.json_response({"object": "list", "data": [{"id": "stand-in", "object": "model"}]})


async def chat(request):
    global served
    served += 1
    first = served == 1
    await request.json()
    if MODE == "error" or (MODE == "error-once" and first):
        return web.json_response({"error": {"message": "the backend broke"}}, status=500)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    start = (served - 1) * 4
    words = " ".join(SENTENCES[(start + i) % len(SENTENCES)] for i in range(5)).split(" ")
    for word in words:
        await resp.write(sse(word + " "))
        if MODE == "hang-once" and first and word.endswith("."):
            await asyncio.sleep(60)  # hangs after the first sentence (bounded: the test is long over)
        await asyncio.sleep(DELAY)
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def main():
    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    print("ready", flush=True)
    await asyncio.sleep(300)  # never outlives a test run, even if nobody stops it


asyncio.run(main())
'''


class StandInProcess:
    """The stand-in backend as a child process on a fixed port, so it can be killed and started again."""

    def __init__(self, folder: Path, mode: str, delay_s: float = 0.05) -> None:
        self.script = folder / "stand_in.py"
        self.script.write_text(STAND_IN, encoding="utf-8")
        self.mode, self.delay_s = mode, delay_s
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, mode: str | None = None) -> None:
        self.mode = mode or self.mode
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(self.script), str(self.port), self.mode, str(self.delay_s),
            stdout=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert line.strip() == b"ready", line

    async def kill(self) -> None:
        """SIGKILL: no goodbye, the open stream just breaks."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[StandInProcess]:
    server = StandInProcess(tmp_path, "story")
    try:
        yield server
    finally:
        await server.kill()


def figure(request: pytest.FixtureRequest, name: str, value: int) -> None:
    """A measured figure, kept with the test's report (user_properties: `--junitxml`, `-o junit_family=legacy`)."""
    request.node.user_properties.append((name, value))


@dataclass
class ModelBot:
    tandem: Tandem
    client: TestClient
    url: str
    auth: dict[str, str]
    conversation: str

    async def post(self, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = await self.client.post(path, json=body or {}, headers=self.auth)
        assert response.status == status, await response.text()
        return await response.json()

    async def stream(self, path: str, body: dict[str, Any]) -> ClientResponse:
        response = await self.client.post(path, json=body, headers={**self.auth, "Accept": "text/event-stream"})
        assert response.status == 200, await response.text()
        return response

    async def passages(self) -> dict[int, tuple]:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text(
                    "SELECT id, story_id, parent_id, author, text, status FROM passages ORDER BY id"))
                return {row[0]: tuple(row) for row in rows}
        finally:
            await engine.dispose()

    async def messages(self) -> dict[int, tuple]:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT id, author, text, status FROM messages ORDER BY id"))
                return {row[0]: tuple(row) for row in rows}
        finally:
            await engine.dispose()


@contextlib.asynccontextmanager
async def model_bot(data_dir: Path, backend_url: str, **lm: Any) -> AsyncIterator[ModelBot]:
    """Tandem configured as a user would (lm.model = the server's URL), behind its aiohttp app."""
    settings = Settings(data_dir=data_dir, lm=LmConfig(model=backend_url, **lm))
    tandem = await build_app(settings)
    try:
        async with TestClient(TestServer(init_app(tandem))) as client:
            opened = await (await client.post("/api/conversations")).json()
            yield ModelBot(tandem, client, settings.resolved_database_url,
                           {"Authorization": f"Bearer {opened['token']}"}, opened["conversation_id"])
    finally:
        await tandem.close()


async def sse_events(response: ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    name = None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name is not None:
            yield name, json.loads(line[6:])
            name = None


def assert_kept(before: dict[int, tuple], after: dict[int, tuple]) -> int:
    for row_id, row in before.items():
        assert after.get(row_id) == row, f"row {row_id} lost or changed"
    return len(before)


def assert_tree_whole(passages: dict[int, tuple], story: dict[str, Any]) -> None:
    """Every parent exists, the head and the waiting candidates are stored passages of the story."""
    ids = {row_id for row_id, row in passages.items() if row[1] == story["id"]}
    for row_id in ids:
        parent = passages[row_id][2]
        assert parent is None or parent in ids, f"passage {row_id} hangs off a missing parent {parent}"
    assert story["head_id"] is None or story["head_id"] in ids
    assert {c["id"] for c in story["candidates"]} <= ids


# --- the HTTP story endpoints -------------------------------------------------------------------


async def test_backend_killed_mid_passage_keeps_it_incomplete_and_the_next_continue_works(
        backend, tmp_path, request) -> None:
    await backend.start()
    async with model_bot(tmp_path / "data", backend.url) as bot:
        story = (await bot.post("/api/stories", {"title": "Lantern", "text": "A fox lived by a wood."}, 201))["story"]
        continue_ = f"/api/stories/{story['id']}/continue"
        first = await bot.post(continue_, {"candidates": 1})
        assert first["candidates"][0]["status"] == "complete" and not first["errors"]
        before = await bot.passages()

        deltas: list[str] = []
        events: dict[str, Any] = {}
        async for name, data in sse_events(await bot.stream(continue_, {"candidates": 1})):
            events[name] = data
            if name == "delta":
                deltas.append(data["text"])
                await backend.kill()  # the server process dies in the middle of the passage
        candidate, done = events["candidate"], events["done"]
        assert candidate["error"] and done["errors"] == [candidate["error"]]  # the user is told
        kept = candidate["passage"]
        assert kept["status"] == "incomplete" and kept["text"] == "".join(deltas).strip()
        assert kept["text"].startswith(("The fox", "A lantern", "Somewhere", "Then", "Rain"))
        after = await bot.passages()
        checked = assert_kept(before, after)
        assert after[kept["id"]][4:] == (kept["text"], "incomplete")

        # While the backend is down: a clear answer, and nothing stored changes.
        down = await bot.post(continue_, {"candidates": 2})
        assert down["candidates"] == [] and down["errors"][0].startswith("unavailable")
        assert await bot.passages() == after

        await backend.start()
        again = await bot.post(continue_, {"candidates": 1})
        assert again["candidates"][0]["status"] == "complete" and not again["errors"]
        final = await bot.passages()
        checked += assert_kept(after, final)
        view = (await (await bot.client.get(f"/api/stories/{story['id']}", headers=bot.auth)).json())["story"]
        assert_tree_whole(final, view)
        assert [p["status"] for p in view["passages"]] == ["complete", "complete", "incomplete", "complete"]
        figure(request, "passages_checked", checked)


async def test_backend_failing_at_once_is_told_and_stores_nothing(backend, tmp_path) -> None:
    await backend.start("error-once")
    async with model_bot(tmp_path / "data", backend.url) as bot:
        story = (await bot.post("/api/stories", {"text": "A fox lived by a wood."}, 201))["story"]
        before = await bot.passages()
        failed = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 1})
        assert failed["candidates"] == [] and failed["errors"][0].startswith("error: ")
        assert "127.0.0.1" not in failed["errors"][0]  # the backend's address stays in the log
        assert await bot.passages() == before
        again = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 1})
        assert again["candidates"][0]["status"] == "complete"
        assert assert_kept(before, await bot.passages()) == 1


async def test_backend_not_running_at_the_first_story_is_a_503_then_works_once_it_is(backend, tmp_path) -> None:
    async with model_bot(tmp_path / "data", backend.url, timeout_s=10) as bot:
        story = (await bot.post("/api/stories", {"text": "A fox lived by a wood."}, 201))["story"]
        refused = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 1}, status=503)
        assert refused["error"]["code"] == "model_unavailable"
        await backend.start()
        done = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 1})
        assert done["candidates"][0]["status"] == "complete"


async def test_backend_hanging_past_lm_timeout_keeps_the_passage_so_far(backend, tmp_path) -> None:
    await backend.start("hang-once")
    async with model_bot(tmp_path / "data", backend.url, timeout_s=2.0) as bot:
        story = (await bot.post("/api/stories", {"text": "A fox lived by a wood."}, 201))["story"]
        timed_out = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 2})
        assert timed_out["errors"][0].startswith("timeout")  # and no second candidate is tried
        kept = timed_out["candidates"]
        assert len(kept) == 1 and kept[0]["status"] == "incomplete"
        assert kept[0]["text"] == "The fox crept to the edge of the wood."
        before = await bot.passages()
        again = await bot.post(f"/api/stories/{story['id']}/continue", {"candidates": 1})
        assert again["candidates"][0]["status"] == "complete"
        assert assert_kept(before, await bot.passages()) == 2


# --- the story skill, in chat -------------------------------------------------------------------


async def _say(bot: ModelBot, words: str) -> dict[str, Any]:
    return await bot.post(f"/api/conversations/{bot.conversation}/messages", {"text": words})


async def test_chat_story_backend_killed_mid_stream_tells_the_user_and_goes_on_after(backend, tmp_path) -> None:
    await backend.start()
    async with model_bot(tmp_path / "data", backend.url) as bot:
        assert (await _say(bot, "/story"))["skill"] == "story"
        first = await _say(bot, "continue 1")
        assert first["status"] == "complete" and first["data"]["story"]["candidates"][0]["status"] == "complete"
        before_passages, before_messages = await bot.passages(), await bot.messages()

        path = f"/api/conversations/{bot.conversation}/messages"
        reply = None
        async for name, data in sse_events(await bot.stream(path, {"text": "continue 1"})):
            if name == "delta":
                await backend.kill()
            elif name == "reply":
                reply = data
        assert reply is not None and reply["message_id"]
        assert "cut short" in reply["text"] and "kept, marked incomplete" in reply["text"]
        kept = reply["data"]["story"]["candidates"][0]
        assert kept["status"] == "incomplete" and kept["text"] in reply["text"]

        down = await _say(bot, "continue 1")  # told, not crashed, while the backend is away
        assert down["skill"] == "story" and down["message_id"] and not down["data"]["story"]["candidates"]

        await backend.start()
        again = await _say(bot, "continue 1")
        assert again["data"]["story"]["candidates"][0]["status"] == "complete"
        passages, messages = await bot.passages(), await bot.messages()
        assert assert_kept(before_passages, passages) == 1
        assert assert_kept(before_messages, messages) == 4
        assert len(messages) == 10  # every turn's two messages, the failed ones included


async def test_chat_story_hanging_past_the_turn_budget_keeps_the_passage_so_far(backend, tmp_path) -> None:
    await backend.start("hang-once")
    async with model_bot(tmp_path / "data", backend.url, timeout_s=60) as bot:
        bot.tandem.skills.get("story").time_budget_s = 2.0  # the turn's budget runs out before lm.timeout_s
        await _say(bot, "/story")
        cut = await _say(bot, "continue 1")
        assert cut["status"] == "incomplete" and cut["message_id"]
        assert cut["text"].startswith("The fox crept to the edge of the wood.")
        passages = await bot.passages()
        assert [row[4:] for row in passages.values()] == [("The fox crept to the edge of the wood.", "incomplete")]
        # The backend no longer hangs; a whole passage streams at 0.05 s a word (about 2 s on an idle
        # machine), so the next turn gets a budget that a loaded CI machine cannot run past by accident.
        bot.tandem.skills.get("story").time_budget_s = 30.0
        again = await _say(bot, "continue 1")
        assert again["status"] == "complete" and again["data"]["story"]["candidates"][0]["status"] == "complete"
        assert assert_kept(passages, await bot.passages()) == 1
