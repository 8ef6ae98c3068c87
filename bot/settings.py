"""The one typed settings object: defaults < tandem.toml < TANDEM_* environment variables."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.core.errors import ConfigError
from bot.channels.ratelimit import IpRateLimit, UserRateLimit
from bot.channels.telegram_config import TelegramConfig
from bot.models.config import LmConfig
from bot.nlu.config import NluConfig
from bot.resources import PACKAGE_ROOT, checkout, shipped_folder

# The folder above bot/: the repository root in a checkout (tests, benchmarks and developer tools read
# it), site-packages in an installed copy. Shipped data is found by bot.resources, never from here.
PROJECT_ROOT = PACKAGE_ROOT

# Folder settings: a relative value in a TOML file is relative to that file's folder; from the
# environment, to the working folder.
PATH_KEYS = ("data_dir", "graphs_dir", "intents_dir")


def default_data_dir() -> Path:
    """<checkout>/data in a checkout (every command of one checkout shares it, whatever the working
    folder); in an installed copy the user's data folder, $XDG_DATA_HOME/tandem or ~/.local/share/tandem
    (a folder that follows the working folder would start an empty database, and fetch the model
    again, in every folder `tandem run` is started from)."""
    root = checkout()
    if root is not None:
        return root / "data"
    base = os.environ.get("XDG_DATA_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "share")
        except RuntimeError as exc:
            raise ConfigError("no home folder to keep the data in: set TANDEM_DATA_DIR") from exc
    return Path(base) / "tandem"


# Keys that hold secrets (dotted for nested tables); accepted only from the environment, never a file.
SECRET_KEYS = ("telegram_token", "admin_token", "telegram_webhook_secret", "lm.api_key")


class ServerConfig(BaseModel):
    """The aiohttp server: where it listens and what it accepts."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Origins allowed to embed the widget / call the API cross-origin ("*" allows any).
    allowed_origins: tuple[str, ...] = ()
    # Largest request body accepted, in bytes: room for a story's JSON import; chat
    # messages have their own, much smaller limit (dispatcher.max_text_chars).
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    # Largest WebSocket frame accepted from the widget, in bytes.
    max_ws_message_bytes: int = Field(64 * 1024, ge=1024)
    # Token buckets (per_minute = 0 turns one off); over them: HTTP 429 / a `rate_limited` frame.
    # Per client address: requests to /api, /ws (handshake and every frame) and /admin.
    rate_limit_per_ip: IpRateLimit = IpRateLimit()
    # Per user: chat turns (messages, story passages and generations).
    rate_limit_per_user: UserRateLimit = UserRateLimit()
    # Behind a reverse proxy every client seems to come from the proxy: trust the last hop of
    # X-Forwarded-For only when the proxy sets it (never on a server clients reach directly).
    trust_forwarded_for: bool = False
    # redis://host:6379/0: keep the rate limits in Redis, shared by all workers and machines
    # (without it each process counts on its own). A Redis that is down falls back to those.
    redis_url: SecretStr | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class DispatcherConfig(BaseModel):
    """How turns are processed."""

    model_config = ConfigDict(extra="forbid")

    # Seconds a turn may take before the user gets a polite "that took too long" answer.
    turn_timeout_s: float = Field(20.0, gt=0)
    # Longer messages are refused with a clear answer (characters, after trimming).
    max_text_chars: int = Field(4096, ge=1)
    # Earlier messages handed to skills as context.
    history_turns: int = Field(10, ge=0)
    default_language: str = "en"
    # Turns running or waiting at once, over all conversations; more are refused at once with a
    # "busy, send it again" answer and nothing stored (0 = no limit). Measured on 2 cores
    # (BENCHMARKS.md, Load): ~150 conversations held; past ~10x that, accepted turns waited out
    # the database pool's 30 s timeout instead.
    max_turns_in_flight: int = Field(256, ge=0)
    # Turns of one user running or waiting at once: more are refused "busy" for that user alone,
    # so one greedy client cannot fill the limit above for everyone (0 = no per-user limit).
    max_turns_in_flight_per_user: int = Field(4, ge=0)
    # Seconds a running turn's ticket holds its conversation's later turns; renewed while the turn
    # runs, so the turn of a process that died stops holding them this long after it died.
    turn_lease_s: float = Field(15.0, ge=1)
    # The response selector (bot/dispatch/selector.py): when no intent is sure or two are close, up to
    # this many skills answer side by side and the best reply is kept (1 = the top intent's skill only).
    max_candidates: int = Field(3, ge=1, le=5)
    # Intents ranked below this confidence are not candidates.
    candidate_floor: float = Field(0.25, ge=0, le=1)
    # A sure top intent that leads the next candidate's by this much answers alone (and streams).
    candidate_margin: float = Field(0.2, ge=0, le=1)


class Settings(BaseSettings):
    """Everything configurable, built once at start-up by `load_settings()` and passed down in slices."""

    model_config = SettingsConfigDict(
        env_prefix="TANDEM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # Database, models and caches; the default: see default_data_dir.
    data_dir: Path = Field(default_factory=default_data_dir)
    # SQLAlchemy URL; empty means a SQLite file `tandem.sqlite3` in data_dir.
    database_url: SecretStr = SecretStr("")
    # SQLite: seconds a write waits for another connection's lock before the turn gives up
    # and tells the user it cannot save right now.
    database_busy_timeout_s: float = Field(30.0, gt=0)
    # Days after which an anonymous user (a web widget or HTTP API session) that never stored a
    # message, story or piece of feedback is deleted; 0 keeps them all (bot/storage/retention.py).
    anonymous_user_retention_days: float = Field(30.0, ge=0)
    graphs_dir: Path = Field(default_factory=lambda: shipped_folder("dialog_graphs"))
    intents_dir: Path = Field(default_factory=lambda: shipped_folder("intents"))
    log_level: str = "INFO"

    server: ServerConfig = ServerConfig()
    dispatcher: DispatcherConfig = DispatcherConfig()
    nlu: NluConfig = NluConfig()
    lm: LmConfig = LmConfig()
    telegram: TelegramConfig = TelegramConfig()
    # Per-skill tables, validated by each skill's own config model at start-up.
    skills: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Hours a sign-in to /admin through the login form lasts; sign-out and `tandem admin revoke`
    # end it sooner. Not a secret (tandem.toml or TANDEM_ADMIN_SESSION_HOURS); at most a year.
    admin_session_hours: float = Field(8.0, gt=0, le=24 * 365)

    # Secrets: from the environment only (TANDEM_TELEGRAM_TOKEN, TANDEM_ADMIN_TOKEN, ...).
    telegram_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    admin_token: SecretStr | None = None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url.get_secret_value()
        return url or f"sqlite+aiosqlite:///{self.data_dir / 'tandem.sqlite3'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (the TOML file, passed in by load_settings) has the lowest priority after defaults.
        return (env_settings, init_settings)


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the settings once; a wrong value raises ConfigError naming the key and where it came from.

    The TOML file is `config_file`, else $TANDEM_CONFIG, else ./tandem.toml when it exists; a relative
    folder in it (PATH_KEYS) is taken from the file's folder, so `--config` works from anywhere.
    """
    env_path = os.environ.get("TANDEM_CONFIG")
    path = config_file or (Path(env_path) if env_path else None)
    if path is None and Path("tandem.toml").is_file():
        path = Path("tandem.toml")
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for key in SECRET_KEYS:
            if _has_key(file_values, key.split(".")):
                env_name = "TANDEM_" + key.replace(".", "__").upper()
                raise ConfigError(f"{path}: `{key}` is a secret; set it in the environment as {env_name}")
        for key in PATH_KEYS:
            if isinstance(file_values.get(key), str):
                file_values[key] = str(path.resolve().parent / Path(file_values[key]).expanduser())
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc


def _has_key(values: dict[str, Any], parts: list[str]) -> bool:
    for part in parts[:-1]:
        values = values.get(part)
        if not isinstance(values, dict):
            return False
    return parts[-1] in values


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        env_name = "TANDEM_" + "__".join(str(p) for p in err["loc"]).upper()
        source = f"{path} or {env_name}" if path else env_name
        lines.append(f"setting `{key}` ({source}): {err['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)
