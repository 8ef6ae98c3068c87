"""SupervisedModel with a real worker process on the bundled SmolLM2: streaming, cancellation, KV-cache
reuse, and survival of SIGKILL, SIGSEGV, three crashes in a row, a hang (SIGSTOP) and a crash at load."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from bot.core.errors import ModelCrashed, ModelTimeout, ModelUnavailable
from bot.models import supervisor
from bot.models.base import ChatMessage, GenerationParams
from bot.models.config import LmConfig
from bot.models.supervisor import SupervisedModel
from bot.models.worker import FAULT_ENV
from tests.models.conftest import needs_llama_cpp, needs_smollm2

pytestmark = [needs_smollm2, needs_llama_cpp]

LONG = GenerationParams(max_new_tokens=200, temperature=0.0)
SHORT = GenerationParams(max_new_tokens=8, temperature=0.0)
STORY = "Once upon a time, in a small village by the sea, there lived"


def config(**changes) -> LmConfig:
    base = {"model": "bundled:smollm2", "n_threads": 1, "timeout_s": 60.0, "load_timeout_s": 60.0}
    return LmConfig(**{**base, **changes})


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_S", (0.05, 0.2))


@pytest.fixture
async def model(model_cache: Path):
    lm = SupervisedModel(config(), model_cache)
    await lm.start()
    try:
        yield lm
    finally:
        await lm.close()


async def kill_mid_stream(lm: SupervisedModel, sig: int) -> tuple[str, BaseException | None]:
    """Stream a long answer and send `sig` to the worker after the third piece."""
    pid = lm.pid
    pieces: list[str] = []
    error = None
    try:
        async for piece in lm.stream(STORY, LONG):
            pieces.append(piece)
            if len(pieces) == 3:
                os.kill(pid, sig)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        error = exc
    return "".join(pieces), error


async def wait_ready(lm: SupervisedModel, *, replacing: int | None = None, timeout_s: float = 60.0) -> None:
    """Until a worker is ready (one other than `replacing`, when given)."""
    async with asyncio.timeout(timeout_s):
        while lm.state != "ready" or lm.pid is None or lm.pid == replacing:
            await asyncio.sleep(0.02)


async def test_streams_counts_and_reports_health(model: SupervisedModel) -> None:
    pieces = [p async for p in model.stream(STORY, SHORT)]
    assert pieces and "".join(pieces).strip()
    assert model.count_tokens("Once upon a time") == 4
    health = model.health()
    assert health["state"] == "ready" and health["pid"] == model.pid != os.getpid()
    assert "llama-cpp-python" in health["backend"]
    chat = await model.generate([ChatMessage("user", "Say hello.")], SHORT)
    assert chat.strip()


async def test_the_worker_reuses_a_storys_kv_cache(model: SupervisedModel) -> None:
    await model.generate(STORY, SHORT, cache_key="story:1")
    await model.generate(STORY + " a fox", SHORT, cache_key="story:1")
    assert model.last_stats["cached_tokens"] > 0


async def test_closing_a_stream_early_frees_the_slot_for_the_next(model: SupervisedModel) -> None:
    stream = model.stream(STORY, LONG)
    async for _ in stream:
        break
    await stream.aclose()
    # max_concurrent is 1: this waits for the cancelled generation to end in the worker, then runs.
    assert (await model.generate(STORY, SHORT)).strip()
    assert model.health()["restarts"] == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
async def test_a_worker_killed_mid_stream_keeps_the_pieces_and_restarts(
    model: SupervisedModel, sig: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.models.supervisor")
    old_pid = model.pid
    text, error = await kill_mid_stream(model, sig)
    assert isinstance(error, ModelCrashed)
    assert text  # what was streamed before the crash stands
    deaths = [r.getMessage() for r in caplog.records if "worker died" in r.getMessage()]
    assert len(deaths) == 1 and signal.Signals(sig).name in deaths[0]
    assert (await model.generate(STORY, SHORT)).strip()  # waits for the restart, then works
    assert model.pid != old_pid
    assert model.health()["restarts"] == 1 and model.health()["last_exit"] == f"signal {signal.Signals(sig).name}"


async def test_three_crashes_in_a_row_then_it_works_again(model: SupervisedModel) -> None:
    pids = []
    for _ in range(3):
        await wait_ready(model, replacing=pids[-1] if pids else None)
        pids.append(model.pid)
        os.kill(model.pid, signal.SIGKILL)
    assert len(set(pids)) == 3
    await wait_ready(model, replacing=pids[-1])
    assert (await model.generate(STORY, SHORT)).strip()
    assert model.health()["restarts"] == 3


async def test_a_hung_worker_times_out_is_killed_and_replaced(model_cache: Path) -> None:
    lm = SupervisedModel(config(timeout_s=3.0), model_cache, ping_timeout_s=0.5)
    await lm.start()
    try:
        pid = lm.pid
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(ModelTimeout):
            await lm.generate(STORY, SHORT)
        await wait_ready(lm, replacing=pid)
        assert lm.health()["last_exit"] == "signal SIGKILL"
        assert (await lm.generate(STORY, SHORT)).strip()
    finally:
        await lm.close()


async def test_a_worker_that_crashes_while_loading_is_reported(model_cache: Path) -> None:
    env = {**os.environ, FAULT_ENV: "crash-on-load"}
    lm = SupervisedModel(config(), model_cache, env=env)
    try:
        with pytest.raises(ModelCrashed, match="SIGSEGV"):
            await lm.start()
        assert lm.health()["state"] == "failed"
    finally:
        await lm.close()


async def test_a_model_that_cannot_load_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    lm = SupervisedModel(config(model=str(broken)), tmp_path)
    try:
        with pytest.raises(ModelUnavailable, match="broken.gguf"):
            await lm.start()
        assert lm.health()["state"] == "failed"
        with pytest.raises(ModelUnavailable):
            await lm.generate(STORY, SHORT)
    finally:
        await lm.close()


async def test_the_concurrency_limit_holds_across_the_process_boundary(model: SupervisedModel) -> None:
    events: list[str] = []

    async def run(tag: str) -> None:
        async for _ in model.stream(STORY, SHORT, cache_key=tag):
            events.append(tag)
        events.append(f"{tag}-end")

    await asyncio.gather(run("a"), run("b"))
    # max_concurrent = 1: one generation ends before the other's first piece.
    first = events[0]
    end = events.index(f"{first}-end")
    assert set(events[:end]) == {first} and first not in events[end + 1:]
