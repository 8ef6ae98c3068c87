"""The clock skill: the date or time asked for, in the user's zone (or a named place's), in both
languages, and strict checks of its settings and places file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.errors import ConfigError
from bot.core.skill import Turn
from bot.dispatch.registry import SkillRegistry
from skills.clock import ClockSkill, format_date, server_zone

# Wednesday, 2 December 2026, 13:05 UTC.
NOW = datetime(2026, 12, 2, 13, 5, tzinfo=UTC)


def clock(**config) -> ClockSkill:
    return ClockSkill(config or None, now=lambda: NOW)


def turn(text: str, language: str = "en", **metadata) -> Turn:
    return Turn("c1", 1, "test", text, language, Annotations(intent=IntentGuess("datetime", 1.0, "rules")),
                metadata=metadata)


@pytest.mark.parametrize(("text", "language", "answer"), [
    ("what time is it?", "en", "It's 14:05 (Europe/Berlin)."),
    ("what's the date today?", "en", "Today is Wednesday, 2 December 2026 (Europe/Berlin)."),
    ("what day is it", "en", "Today is Wednesday, 2 December 2026 (Europe/Berlin)."),
    ("date and time please", "en", "It's 14:05 (Europe/Berlin) on Wednesday, 2 December 2026."),
    ("который час?", "ru", "Сейчас 14:05 (Europe/Berlin)."),
    ("сколько времени?", "ru", "Сейчас 14:05 (Europe/Berlin)."),
    ("какое сегодня число?", "ru", "Сегодня среда, 2 декабря 2026 года (Europe/Berlin)."),
    ("какой сегодня день недели?", "ru", "Сегодня среда, 2 декабря 2026 года (Europe/Berlin)."),
])
async def test_answers_what_was_asked_in_the_users_zone(text, language, answer) -> None:
    assert await clock().respond(turn(text, language, timezone="Europe/Berlin")) == answer


def test_russian_dates_use_the_genitive_month_and_lower_case_weekday() -> None:
    days = [datetime(2026, month, 1, tzinfo=UTC) for month in range(1, 13)]
    assert [format_date(d, "ru").split()[2] for d in days] == [
        "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября",
        "декабря"]
    assert format_date(datetime(2026, 12, 6, tzinfo=UTC), "ru") == "воскресенье, 6 декабря 2026 года"
    assert format_date(datetime(2026, 12, 6, tzinfo=UTC), "en") == "Sunday, 6 December 2026"


async def test_the_time_is_24_hour_and_the_zone_can_change_the_date() -> None:
    late = ClockSkill(now=lambda: datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    assert await late.respond(turn("time and date", timezone="Asia/Tokyo")) == \
        "It's 08:30 (Asia/Tokyo) on Thursday, 3 December 2026."


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "", 42, None])
async def test_an_unknown_zone_from_the_channel_falls_back_to_the_configured_one(zone) -> None:
    assert await clock(timezone="America/New_York").respond(turn("what time is it?", timezone=zone)) == \
        "It's 08:05 (America/New_York)."


async def test_without_any_zone_the_servers_is_named() -> None:
    zone = server_zone()
    reply = await clock().respond(turn("what time is it?"))
    assert reply == f"It's {NOW.astimezone(zone.tz):%H:%M} ({zone.name})."


@pytest.mark.parametrize(("text", "language", "answer"), [
    ("what time is it in Tokyo?", "en", "In Tokyo it's 22:05 (Asia/Tokyo)."),
    ("what time is it in new york right now", "en", "In New York it's 08:05 (America/New_York)."),
    ("what's the time in London", "en", "In London it's 13:05 (Europe/London)."),
    ("what day is it in Japan?", "en", "In Japan it's Wednesday, 2 December 2026 (Asia/Tokyo)."),
    ("который час в Токио?", "ru", "В Токио сейчас 22:05 (Asia/Tokyo)."),
    ("сколько сейчас времени во Владивостоке", "ru", "Во Владивостоке сейчас 23:05 (Asia/Vladivostok)."),
    ("какое число в нью-йорке?", "ru", "В Нью-Йорке сейчас среда, 2 декабря 2026 года (America/New_York)."),
])
async def test_a_named_place_is_answered_in_its_zone(text, language, answer) -> None:
    assert await clock().respond(turn(text, language, timezone="Europe/Berlin")) == answer


async def test_an_unknown_place_says_so_and_gives_the_users_time() -> None:
    en = await clock().respond(turn("what time is it in Atlantis?", timezone="Europe/Berlin"))
    ru = await clock().respond(turn("который час в Урюпинске?", "ru", timezone="Europe/Berlin"))
    assert en == "I don't know which time zone Atlantis is in. It's 14:05 (Europe/Berlin)."
    assert ru == "Я не знаю, какой часовой пояс в Урюпинске. Сейчас 14:05 (Europe/Berlin)."


async def test_a_country_with_several_zones_asks_for_a_city() -> None:
    reply = await clock().respond(turn("который час в России?", "ru", timezone="Europe/Berlin"))
    assert reply.startswith("В России несколько часовых поясов; спроси про город")
    assert reply.endswith("Сейчас 14:05 (Europe/Berlin).")


@pytest.mark.parametrize("text", ["what time is it in my time zone?", "сколько времени в данный момент?"])
async def test_phrases_that_are_not_places_are_not_looked_up(text) -> None:
    reply = await clock().respond(turn(text, "ru" if "в" in text else "en", timezone="Europe/Berlin"))
    assert "14:05 (Europe/Berlin)" in reply and "know" not in reply and "не знаю" not in reply


def test_an_unknown_configured_zone_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"skills\.clock\.timezone.*Europe/Atlantis"):
        SkillRegistry.configure(ClockSkill, {"clock": {"timezone": "Europe/Atlantis"}})


@pytest.mark.parametrize(("content", "message"), [
    ("zones:\n  en:\n    atlantis: Atlantic/Atlantis\n", r"zones\.en\.atlantis.*Atlantic/Atlantis"),
    ("zones: [a]\n", "expected `zones:"),
    ("zones:\n  en: {}\nseveral:\n  en: usa\n", r"several\.en"),
])
def test_a_bad_places_file_stops_start_up_naming_the_file(tmp_path: Path, content, message) -> None:
    path = tmp_path / "places.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as raised:
        ClockSkill({"places_file": str(path)})
    assert str(path) in str(raised.value)


# --- through the real bot ------------------------------------------------------


@pytest.mark.parametrize(("text", "language", "shape"), [
    ("what time is it?", "en", r"^It's \d\d:\d\d \(Europe/Paris\)\.$"),
    ("what's the date today?", "en", r"^Today is \w+day, \d{1,2} \w+ \d{4} \(Europe/Paris\)\.$"),
    ("который час?", "ru", r"^Сейчас \d\d:\d\d \(Europe/Paris\)\.$"),
    ("какое сегодня число?", "ru", r"^Сегодня [а-я]+, \d{1,2} [а-я]+ \d{4} года \(Europe/Paris\)\.$"),
])
async def test_date_and_time_questions_reach_the_clock(talk, text, language, shape) -> None:
    reply = await talk("ann", text, language, timezone="Europe/Paris")
    assert reply.skill == "clock" and re.match(shape, reply.text), reply.text
