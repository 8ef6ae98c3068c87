"""ClockSkill: the date and/or time asked for, in the user's time zone (or a named place's), saying which."""

from __future__ import annotations

import logging
import os
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml
from pydantic import field_validator

from bot.core.errors import ConfigError
from bot.core.skill import Skill, SkillConfig, Turn
from skills.repertoire import DATA_DIR

log = logging.getLogger(__name__)

PLACES_FILE = DATA_DIR / "places.yaml"

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
}
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    # Genitive, as a date says it: «2 декабря».
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
           "ноября", "декабря"),
}

# What the message asks for: the time, the date (a weekday, month or year is answered with the date).
_ASKS_TIME = re.compile(r"\btime\b|\bhour\b|o'?clock|\bчас\b|\bчаса\b|\bчасов\b|\bвремя\b|\bвремени\b", re.IGNORECASE)
_ASKS_DATE = re.compile(r"\bdate\b|\bday\b|\btoday\b|\bweekday\b|\bmonth\b|\byear\b|\bчисло\b|\bдат[аыу]\b|"
                        r"\bдень\b|\bдня\b|\bсегодня\b|\bмесяц\w*|\bгод\b", re.IGNORECASE)
# "... in Tokyo?", «... в Токио?»: a place at the end of the question.
_PLACE_EN = re.compile(r"\bin\s+(?P<place>[^\W\d_][\w .'’-]{0,40}?)\s*(?:right now|now|today|at the moment)?"
                       r"\s*[?!.]*\s*$", re.IGNORECASE)
_PLACE_RU = re.compile(r"(?:^|\s)(?:в|во)\s+(?P<place>[^\W\d_][\w .-]{0,40}?)\s*(?:сейчас|сегодня|теперь)?"
                       r"\s*[?!.]*\s*$", re.IGNORECASE)
# Not places: "in my time zone", «в моём городе», "in the morning".
_NOT_PLACES = re.compile(r"^(my|your|our|this|that|the (morning|evening|afternoon|world)|general|here|there|моём|моем|"
                         r"моей|твоём|твоем|твоей|нашем|нашей|этом|этой|этот|эту|данный|настоящий|текущий|мире)\b",
                         re.IGNORECASE)

TIME = {"en": "It's {time} ({zone}).", "ru": "Сейчас {time} ({zone})."}
DATE = {"en": "Today is {date} ({zone}).", "ru": "Сегодня {date} ({zone})."}
BOTH = {"en": "It's {time} ({zone}) on {date}.", "ru": "Сейчас {time} ({zone}), {date}."}
PLACE_TIME = {"en": "In {place} it's {time} ({zone}).", "ru": "{place_ru} сейчас {time} ({zone})."}
PLACE_DATE = {"en": "In {place} it's {date} ({zone}).", "ru": "{place_ru} сейчас {date} ({zone})."}
PLACE_BOTH = {"en": "In {place} it's {time} ({zone}) on {date}.", "ru": "{place_ru} сейчас {time} ({zone}), {date}."}
UNKNOWN_PLACE = {
    "en": "I don't know which time zone {place} is in. ",
    "ru": "Я не знаю, какой часовой пояс {place_ru_lower}. ",
}
SEVERAL_ZONES = {
    "en": "{place} has several time zones; ask me about a city there, like \"what time is it in {example}?\". ",
    "ru": "{place_ru} несколько часовых поясов; спроси про город, например: «который час в {example}?». ",
}
EXAMPLE_CITY = {"en": "New York", "ru": "Москве"}


@dataclass(frozen=True)
class Zone:
    """A time zone and the name the answer gives it."""

    tz: tzinfo
    name: str


def zone_named(name: Any) -> Zone | None:
    """The IANA zone `name` ("Europe/Berlin"), or None for anything else (run time is forgiving)."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    try:
        tz = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return Zone(tz, "UTC" if name in ("UTC", "Etc/UTC", "Etc/GMT", "GMT") else name)


def server_zone() -> Zone:
    """The machine's local zone, by its IANA name when the system tells it (TZ, /etc/localtime)."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    for name in candidates:
        zone = zone_named(name)
        if zone is not None:
            return zone
    local = datetime.now().astimezone().tzinfo or UTC
    return Zone(local, datetime.now(local).tzname() or "server time")


class ClockConfig(SkillConfig):
    # The zone to answer in when the user's channel sends none (an IANA name); None: the server's.
    timezone: str | None = None
    places_file: Path = PLACES_FILE

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and zone_named(value) is None:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)")
        return value


class ClockSkill(Skill):
    name = "clock"
    selectable = True  # its answer changes nothing outside the turn
    intents = ("datetime",)
    description = "Tells the date and time, in the user's time zone."
    config_model = ClockConfig

    def __init__(self, config: ClockConfig | None = None, *, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(config)
        # An aware datetime; tests pass a fixed one.
        self.now = now or (lambda: datetime.now(UTC))
        self.places, self.several = load_places(Path(self.config.places_file))

    def default_zone(self, turn: Turn) -> Zone:
        """The user's zone from the channel (the web widget sends the browser's), else the configured
        one, else the server's."""
        given = turn.metadata.get("timezone")
        zone = zone_named(given)
        if zone is None and given:
            log.debug("ignored unknown time zone %r conversation=%s", given, turn.conversation_id)
        if zone is None and self.config.timezone:
            zone = zone_named(self.config.timezone)
        return zone or server_zone()

    async def respond(self, turn: Turn) -> str:
        language = turn.language if turn.language in WEEKDAYS else "en"
        wants_time = bool(_ASKS_TIME.search(turn.text))
        wants_date = bool(_ASKS_DATE.search(turn.text))
        if wants_time == wants_date:  # both, or neither named ("what about now?"): say both
            wants_time = wants_date = True
        place = self._place(turn.text, language)
        prefix = ""
        zone = None
        if place is not None:
            shown, key = place
            zone = self.places.get(key)
            if zone is None:
                template = SEVERAL_ZONES if key in self.several else UNKNOWN_PLACE
                prefix = template[language].format(**_place_forms(shown), example=EXAMPLE_CITY[language])
                place = None
        if zone is None:
            zone = self.default_zone(turn)
        moment = self.now().astimezone(zone.tz)
        fields = {"time": moment.strftime("%H:%M"), "date": format_date(moment, language), "zone": zone.name}
        if place is not None:
            fields.update(_place_forms(place[0]))
            template = PLACE_BOTH if wants_time and wants_date else PLACE_TIME if wants_time else PLACE_DATE
        else:
            template = BOTH if wants_time and wants_date else TIME if wants_time else DATE
        return prefix + template[language].format(**fields)

    def _place(self, text: str, language: str) -> tuple[str, str] | None:
        """The place the question names, as written and as a lookup key, or None."""
        for pattern in (_PLACE_RU, _PLACE_EN) if language == "ru" else (_PLACE_EN, _PLACE_RU):
            found = pattern.search(text)
            if found is None:
                continue
            shown = found.group("place").strip(" .'’-")
            if not shown or _NOT_PLACES.match(shown) or _ASKS_DATE.fullmatch(shown) or _ASKS_TIME.fullmatch(shown):
                return None
            return shown, place_key(shown)
        return None


def format_date(moment: datetime, language: str) -> str:
    """"Wednesday, 2 December 2026" / «среда, 2 декабря 2026 года»."""
    weekday = WEEKDAYS[language][moment.weekday()]
    month = MONTHS[language][moment.month - 1]
    if language == "ru":
        return f"{weekday}, {moment.day} {month} {moment.year} года"
    return f"{weekday}, {moment.day} {month} {moment.year}"


def place_key(text: str) -> str:
    """"New_York", "new york", "the New-York " -> "new york"; «Нью-Йорке» keeps its hyphen."""
    key = re.sub(r"\s+", " ", text.replace("_", " ").strip().casefold())
    key = key.removeprefix("the ") if key not in ("the us", "the usa", "the united states") else key
    return key.replace("ё", "е")


def _place_forms(shown: str) -> dict[str, str]:
    """The place as the templates need it: "Tokyo"; «В Токио» at the start of a Russian sentence."""
    # Typed in lower case ("new york"): capitalised as a name ("New York"); else as typed.
    place = re.sub(r"[^\W\d_]+", lambda m: m.group().capitalize(), shown) if shown.islower() else shown
    preposition = "Во" if re.match(r"(?i)в[^аеёиоуыэюя]", shown) else "В"
    return {"place": place, "place_ru": f"{preposition} {place}", "place_ru_lower": f"{preposition.lower()} {place}"}


def load_places(path: Path) -> tuple[dict[str, Zone], set[str]]:
    """Place names -> zones: every IANA zone's city, and the names in `path` (strict: a bad file or an
    unknown zone in it stops start-up naming both)."""
    places: dict[str, Zone] = {}
    for name in sorted(zoneinfo.available_timezones()):
        region, _, city = name.partition("/")
        if city and region not in ("Etc", "SystemV", "US", "Brazil", "Canada", "Chile", "Mexico"):
            zone = zone_named(name)
            if zone is not None:
                places.setdefault(place_key(city.rsplit("/", 1)[-1]), zone)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the places file: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("zones"), dict) or set(raw) - {"zones", "several"}:
        raise ConfigError(f"{path}: expected `zones: {{language: {{place: zone}}}}` and optionally `several:`")
    for language, names in raw["zones"].items():
        if not isinstance(names, dict):
            raise ConfigError(f"{path}: `zones.{language}` must map place names to time zones")
        for place, zone_name in names.items():
            zone = zone_named(zone_name)
            if zone is None:
                raise ConfigError(f"{path}: `zones.{language}.{place}`: unknown time zone {zone_name!r}")
            places[place_key(str(place))] = zone
    several: set[str] = set()
    for language, names in (raw.get("several") or {}).items():
        if not isinstance(names, list):
            raise ConfigError(f"{path}: `several.{language}` must be a list of place names")
        several.update(place_key(str(n)) for n in names)
    return places, several
