"""The running bot for Telegram end-to-end tests: real Tandem, real python-telegram-bot, fake Bot API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import Tandem, build_app
from bot.channels.telegram import TELEGRAM, TelegramChannel
from bot.channels.telegram_config import TelegramConfig
from bot.core.skill import Skill
from bot.models.fake import FakeLanguageModel
from bot.server import init_app
from bot.settings import Settings
from tests.channels.fake_bot_api import FakeBotApi

# Small waits so the whole suite stays fast; production defaults are in TelegramConfig.
FAST = {
    "poll_timeout_s": 1.0, "stream_after_s": 0.3, "request_timeout_s": 2.0, "typing_interval_s": 0.5,
    "retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2, "max_retries": 4, "leader_interval_s": 0.2,
}
SECRET = "s3cret-webhook_token"
T = TypeVar("T")


@dataclass
class RunningBot:
    api: FakeBotApi
    tandem: Tandem
    client: TestClient
    channel: TelegramChannel

    async def count(self, table: Any, *where: Any) -> int:
        async with self.tandem.db.transaction() as session:
            return await session.scalar(select(func.count()).select_from(table).where(*where)) or 0

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.tandem.db.transaction() as session:
            return list(await session.scalars(select(table).where(*where).order_by(table.id)))

    async def post_update(self, update: dict[str, Any]) -> int:
        """POST `update` to the webhook as Telegram does (with the secret); the answer's status."""
        response = await self.client.post(self.channel.config.webhook_path, json=update,
                                          headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        await response.read()
        return response.status

    async def eventually(self, read: Callable[[], Awaitable[T]], check: Callable[[T], bool],
                         timeout: float = 5.0) -> T:
        """`await read()` until `check` holds (stores that follow a sent message land a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            value = await read()
            if check(value) or time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_bot(api: FakeBotApi, data_dir: Path, *, language_model: FakeLanguageModel | None = None,
                      skills: dict[str, Skill] | None = None, token: str | None = None,
                      database_url: str | None = None, **telegram: Any) -> AsyncIterator[RunningBot]:
    """`tandem run` in-process: the web app with the Telegram channel started by its cleanup_ctx.
    `database_url`: another database than the SQLite file in `data_dir` (several bots may share one)."""
    config = TelegramConfig(**{"api_base_url": api.base_url, **FAST, **telegram})
    settings = Settings(data_dir=data_dir, telegram_token=SecretStr(token or api.token),
                        telegram_webhook_secret=SecretStr(SECRET), telegram=config,
                        database_url=SecretStr(database_url or ""))
    tandem = await build_app(settings, language_model=language_model or FakeLanguageModel("Once upon a time."))
    for name, skill in (skills or {}).items():
        tandem.skills._skills[name] = skill  # a scripted stand-in for a shipped skill
    try:
        app = init_app(tandem)
        async with TestClient(TestServer(app)) as client:
            yield RunningBot(api, tandem, client, app[TELEGRAM])
    finally:
        await tandem.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = await FakeBotApi().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def bot(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[RunningBot]:
    async with running_bot(api, tmp_path / "data") as running:
        yield running
