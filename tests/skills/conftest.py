"""Fixtures of the skill tests: a real Tandem (the shipped intents, graphs, skills and intent classifier,
with a fake generative model) and `talk`, which sends it one message and returns the reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bot.app import build_app
from bot.core.messages import Incoming, Reply
from bot.models.fake import FakeLanguageModel

SMALL_TALK_ANSWER = "I'm doing well, thank you for asking."
Talk = Callable[..., Awaitable[Reply]]


@pytest.fixture
async def shipped_app(settings):
    app = await build_app(settings, language_model=FakeLanguageModel([SMALL_TALK_ANSWER]))
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
def talk(shipped_app) -> Talk:
    async def send(user: str, text: str, language: str = "en", **metadata) -> Reply:
        incoming = Incoming("test", user, text, language=language, metadata=metadata)
        return await shipped_app.handle_turn(incoming).reply()

    return send
