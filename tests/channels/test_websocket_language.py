"""The widget's hello frame: its language is the first guess of the reply language (and of the
channel's own texts), its time zone reaches every turn of the connection as metadata["timezone"]."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.websocket import client_language, client_timezone
from bot.core.skill import Skill, Turn
from bot.server import init_app
from tests.channels.test_websocket import hello, until


def russian(text: str) -> bool:
    return len(re.findall(r"[а-яё]", text, re.IGNORECASE)) > len(re.findall(r"[a-z]", text, re.IGNORECASE))


class TimezoneProbe(Skill):
    """Stands in for the help skill and answers with the time zone its turn was given."""

    name = "help"
    intents = ("help",)

    async def respond(self, turn: Turn) -> str:
        return f"tz={turn.metadata.get('timezone')!r}"


@pytest.fixture
async def client(tandem):
    async with TestClient(TestServer(init_app(tandem))) as test_client:
        yield test_client


async def ask(ws, client_id: str, text: str) -> dict:
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    frame, _ = await until(ws, "reply")
    return frame


@pytest.mark.parametrize("language", ["ru", "ru-RU", "RU"])
async def test_the_hello_language_answers_a_short_message_in_russian(client, language) -> None:
    ws, _ = await hello(client, language=language)
    assert russian((await ask(ws, "a", "help"))["text"])
    assert russian((await ask(ws, "b", "ok"))["text"])
    # A real English sentence is answered in English all the same.
    assert not russian((await ask(ws, "c", "could you tell me what you can do?"))["text"])
    await ws.close()


async def test_without_a_language_a_short_message_is_answered_in_english(client) -> None:
    ws, _ = await hello(client, language="de")
    assert not russian((await ask(ws, "a", "help"))["text"])
    await ws.close()


async def test_a_refused_message_is_refused_in_the_hello_language(client) -> None:
    ws, _ = await hello(client, language="ru")
    await ws.send_json({"type": "message", "client_id": "long", "text": "слово " * 1000})
    rejected, _ = await until(ws, "rejected")
    assert "длинное" in rejected["message"] and "4096" in rejected["message"]
    await ws.send_json({"type": "message", "client_id": "empty", "text": " \u200b "})
    assert russian((await until(ws, "rejected"))[0]["message"])
    await ws.close()
    ws, _ = await hello(client)
    await ws.send_json({"type": "message", "client_id": "long", "text": "word " * 1000})
    assert "too long" in (await until(ws, "rejected"))[0]["message"]
    await ws.close()


async def test_the_time_zone_of_hello_reaches_every_turn(tandem, client) -> None:
    tandem.skills._skills["help"] = TimezoneProbe()
    ws, welcome = await hello(client, timezone="Europe/Moscow")
    assert (await ask(ws, "a", "help"))["text"] == "tz='Europe/Moscow'"
    assert (await ask(ws, "b", "help"))["text"] == "tz='Europe/Moscow'"
    await ws.close()
    # A new connection says it again (a browser that moved says where it is now).
    ws, _ = await hello(client, token=welcome["token"], timezone="America/Argentina/Buenos_Aires")
    assert (await ask(ws, "c", "help"))["text"] == "tz='America/Argentina/Buenos_Aires'"
    await ws.close()


@pytest.mark.parametrize("timezone", [None, "", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime",
                                      "localtime", "Europe", "Europe/Moscow\x00", 42, ["UTC"], "x" * 200])
async def test_a_time_zone_that_is_not_an_iana_name_is_ignored(tandem, client, timezone) -> None:
    tandem.skills._skills["help"] = TimezoneProbe()
    ws, _ = await hello(client, timezone=timezone)
    assert (await ask(ws, "a", "help"))["text"] == "tz=None"
    await ws.close()


def test_client_language_and_time_zone_parsing() -> None:
    assert [client_language(v) for v in ("en", "ru", "ru-RU", "en_GB", " RU ")] == ["en", "ru", "ru", "en", "ru"]
    assert [client_language(v) for v in ("de", "rus", "russian", "", None, 7)] == [None] * 6
    assert client_timezone("UTC") == "UTC" and client_timezone("Asia/Kolkata") == "Asia/Kolkata"
    assert client_timezone("Etc/GMT+3") == "Etc/GMT+3"
    assert client_timezone("Asia/Nowhere") is None
