"""Browser tests' fixtures: a real Tandem (fake language model) served on 127.0.0.1, and headless Chromium."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from bot.settings import PROJECT_ROOT
from tests.conftest import UNLIMITED

CHROMIUM = os.environ.get("TANDEM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN_TOKEN = "test-admin-token"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
DOCS_IMG = PROJECT_ROOT / "docs" / "img"


@dataclass
class LiveServer:
    url: str
    tandem: object
    model: object


def fake_story_model():
    """Numbered, word-by-word output with a small delay, so streaming and stop can be seen."""
    from bot.models.fake import FakeLanguageModel, FakeScript

    counter = itertools.count(1)

    def respond(prompt, params) -> str:
        return f"The fox lifted lantern number {next(counter)} and walked on into the quiet dark woods."

    return FakeLanguageModel(script=FakeScript(respond=respond, delay_s=0.04), max_concurrent=2)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def live_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    from bot.app import build_app
    from bot.server import init_app
    from bot.settings import Settings

    with pytest.MonkeyPatch.context() as mp:
        # Module-scoped, so the per-test environment cleaner has not run yet: clean here.
        for key in list(os.environ):
            if key.startswith("TANDEM_") and key not in ("TANDEM_TEST_PG_URL", "TANDEM_TEST_CHROMIUM"):
                mp.delenv(key)
        for key, value in UNLIMITED.items():
            mp.setenv(key, value)
        settings = Settings(data_dir=tmp_path_factory.mktemp("web") / "data", admin_token=SecretStr(ADMIN_TOKEN))
    model = fake_story_model()
    tandem = await build_app(settings, language_model=model)
    runner = web.AppRunner(init_app(tandem), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", tandem, model)
    finally:
        await runner.cleanup()
        await tandem.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser():
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TANDEM_TEST_CHROMIUM)")
    async with async_playwright() as playwright:
        try:
            chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - only a browser that cannot start skips the tests
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {exc}")
        try:
            yield chromium
        finally:
            await chromium.close()


def save_screenshot(png: bytes, name: str) -> Path:
    """Into test-artifacts/ always; into docs/img/ too when UPDATE_DOCS_SCREENSHOTS=1 (for the README)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(png)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path
