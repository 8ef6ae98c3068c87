"""The OpenAI-compatible backend against a real llama_cpp.server process and an aiohttp stand-in for faults."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from bot.core.errors import ModelError, ModelTimeout, ModelUnavailable
from bot.models.base import ChatMessage, GenerationParams
from bot.models.openai_backend import OpenAiModel

from .conftest import needs_llama_cpp, needs_smollm2
from .test_token_count import ENGLISH, RUSSIAN, old_estimate, settled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- stand-in server for faults


def sse(text: str) -> bytes:
    event = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(event)}\n\n".encode()


class StandIn:
    """A scripted OpenAI-compatible server: `mode` picks a fault."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        self.cache_keys: list[str | None] = []
        self.disconnected = asyncio.Event()

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stand-in", "object": "model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.cache_keys.append(request.headers.get("X-Tandem-Cache-Key"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        words = ["Once ", "upon ", "a ", "time ", "there ", "was ", "a ", "fox."]
        try:
            for index, word in enumerate(words):
                if self.mode == "die" and index == 3:
                    # The server dies mid-stream: the connection drops without [DONE].
                    request.transport.close()
                    return resp
                await resp.write(sse(word))
                await asyncio.sleep(0.5 if self.mode == "slow" else 0.01)
            await resp.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return resp


@pytest.fixture
async def stand_in():
    server = StandIn()
    app = web.Application()
    app.router.add_get("/v1/models", server.models)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/completions", server.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    model = OpenAiModel(f"http://127.0.0.1:{port}", timeout_s=5, api_key="sekret")
    await model.start()
    yield server, model
    await model.close()
    await runner.cleanup()


async def test_streams_pieces_and_sends_the_sampling(stand_in) -> None:
    server, model = stand_in
    params = GenerationParams(max_new_tokens=20, temperature=0.5, seed=11, stop=("fox",))
    text = await model.generate([ChatMessage("user", "Tell me")], params, cache_key="story-7")
    assert text == "Once upon a time there was a "
    body = server.requests[0]
    assert body["model"] == "stand-in" and body["stream"] is True
    assert body["seed"] == 11 and body["max_tokens"] == 20 and body["user"] == "story-7"
    assert body["messages"] == [{"role": "user", "content": "Tell me"}]
    # The header a balancer routes on, so a story keeps reaching the model server that caches it.
    await model.generate("Once", params)
    assert server.cache_keys == ["story-7", None]


async def test_server_dying_mid_stream_raises_after_the_partial_pieces(stand_in) -> None:
    server, model = stand_in
    server.mode = "die"
    got: list[str] = []
    with pytest.raises(ModelError):
        async for piece in model.stream("Once", GenerationParams()):
            got.append(piece)
    assert "".join(got) == "Once upon a "


async def test_slow_server_times_out_keeping_the_pieces(stand_in) -> None:
    server, model = stand_in
    server.mode = "slow"
    model.timeout_s = 1.2
    got: list[str] = []
    with pytest.raises(ModelTimeout):
        async for piece in model.stream("Once", GenerationParams()):
            got.append(piece)
    assert 1 <= len(got) < 8


async def test_closing_the_stream_drops_the_connection(stand_in) -> None:
    server, model = stand_in
    server.mode = "slow"
    stream = model.stream("Once", GenerationParams())
    assert await anext(stream) == "Once "
    await stream.aclose()
    await asyncio.wait_for(server.disconnected.wait(), 3)


async def test_unreachable_server_is_reported_at_start() -> None:
    model = OpenAiModel(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=2)
    with pytest.raises(ModelUnavailable, match="lm.model"):
        await model.start()
    await model.close()


# ---------------------------------------------------------------- the real llama.cpp server


@pytest.fixture(scope="module")
def llama_server(smollm2_gguf: Path):
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start within 90 s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest_asyncio.fixture
async def served(llama_server):
    model = OpenAiModel(llama_server, timeout_s=60)
    await model.start()
    yield model
    await model.close()


@needs_smollm2
@needs_llama_cpp
@pytest.mark.slow
async def test_chat_and_completion_stream_from_a_real_llama_cpp_server(served) -> None:
    assert served.served_model == "smollm2"
    messages = [ChatMessage("user", "Name a colour.")]
    chat = [p async for p in served.stream(messages, GenerationParams(max_new_tokens=12))]
    assert len(chat) >= 2 and "".join(chat).strip()
    story = await served.generate("Once upon a time, a fox", GenerationParams(max_new_tokens=12, seed=1))
    assert story.strip()


@needs_smollm2
@needs_llama_cpp
@pytest.mark.slow
async def test_real_server_seeds_and_stop_strings(served) -> None:
    prompt = "The little fox looked at the moon and"
    params = GenerationParams(max_new_tokens=10, temperature=1.0)
    assert await served.generate(prompt, params) != await served.generate(prompt, params)
    same = GenerationParams(max_new_tokens=10, seed=5)
    assert await served.generate(prompt, same) == await served.generate(prompt, same)
    params = GenerationParams(max_new_tokens=20, temperature=0, stop=(",",))
    text = await served.generate("Count: one, two, three, four,", params)
    assert "," not in text


@needs_smollm2
@needs_llama_cpp
@pytest.mark.slow
async def test_real_server_counts_russian_with_the_served_models_tokenizer(served, smollm2_gguf: Path) -> None:
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(smollm2_gguf), vocab_only=True, verbose=False)

    def real(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    assert served._counter.endpoint.server == "llama-cpp-python"  # found at start(): /extras/tokenize
    await served.prepare_counts([RUSSIAN, ENGLISH])
    for text in (RUSSIAN, ENGLISH):
        assert abs(served.count_tokens(text) - real(text)) <= 0.02 * real(text)
    # 3.5 characters a token counted this Russian story at well under half its real length.
    assert old_estimate(RUSSIAN) < 0.5 * real(RUSSIAN)


@needs_smollm2
@needs_llama_cpp
@pytest.mark.slow
async def test_counting_while_a_passage_streams_does_not_cut_it_short(served, smollm2_gguf: Path) -> None:
    # llama-cpp-python's server ends a running stream when another request arrives, a tokenize
    # call too: the counter holds its calls back until the generation is over.
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(smollm2_gguf), vocab_only=True, verbose=False)
    prompt = "Once upon a time, in a small village by the sea, there lived"
    params = GenerationParams(max_new_tokens=40, temperature=0, seed=3)
    alone = await served.generate(prompt, params)
    pieces: list[str] = []
    counted: list[str] = []
    async for piece in served.stream(prompt, params):
        pieces.append(piece)
        counted.append(f"{piece} слово{len(pieces)}")
        served.count_tokens(counted[-1])  # words not seen yet: asked for in the background
        await served.prepare_counts([counted[-1]])  # mid-stream: left to the background, no wait
    assert "".join(pieces) == alone
    await settled(served._counter)  # the held-back calls went out once the stream ended
    for text in counted:
        assert served.count_tokens(text) == len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))
