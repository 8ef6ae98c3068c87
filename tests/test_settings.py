"""Settings: defaults < TOML file < environment; wrong values and secrets in files stop start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.settings as settings_module
from bot.core.errors import ConfigError
from bot.settings import PROJECT_ROOT, load_settings


def test_defaults_put_sqlite_in_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path / "d"))
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'tandem.sqlite3'}"
    assert settings.server.host == "127.0.0.1"


def test_environment_overrides_file_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tandem.toml"
    config.write_text("[server]\nport = 9001\nhost = '0.0.0.0'\n[dispatcher]\nturn_timeout_s = 5\n")
    monkeypatch.setenv("TANDEM_SERVER__PORT", "9002")
    settings = load_settings(config)
    assert settings.server.port == 9002  # environment beats the file
    assert settings.server.host == "0.0.0.0"  # the file beats the default
    assert settings.dispatcher.turn_timeout_s == 5
    assert settings.dispatcher.max_text_chars == 4096  # default


def test_config_file_found_through_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other.toml"
    config.write_text("log_level = 'debug'\n")
    monkeypatch.setenv("TANDEM_CONFIG", str(config))
    assert load_settings().log_level == "DEBUG"


def test_a_wrong_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"server\.port.*TANDEM_SERVER__PORT"):
        load_settings()


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "tandem.toml"
    config.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings(config)


@pytest.mark.parametrize(
    "content, env_name",
    [("telegram_token = '123:abc'\n", "TANDEM_TELEGRAM_TOKEN"), ("[lm]\napi_key = 'sk-1'\n", "TANDEM_LM__API_KEY")],
)
def test_secrets_are_refused_in_files(tmp_path: Path, content: str, env_name: str) -> None:
    config = tmp_path / "tandem.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=env_name):
        load_settings(config)


def test_secrets_come_from_the_environment_and_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_TELEGRAM_TOKEN", "123:supersecret")
    settings = load_settings()
    assert settings.telegram_token.get_secret_value() == "123:supersecret"
    assert "supersecret" not in repr(settings)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[server\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_settings(config)


def test_relative_folders_in_a_file_are_taken_from_the_files_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`tandem run --config /etc/tandem/tandem.toml` finds the same data folder from any working folder."""
    config = tmp_path / "conf" / "tandem.toml"
    config.parent.mkdir()
    config.write_text("data_dir = 'data'\ngraphs_dir = '../graphs'\nintents_dir = '/srv/intents'\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config)
    assert settings.data_dir == tmp_path / "conf" / "data"
    assert settings.graphs_dir == tmp_path / "conf" / ".." / "graphs"
    assert settings.intents_dir == Path("/srv/intents")
    monkeypatch.setenv("TANDEM_DATA_DIR", "here")  # the environment's are the working folder's
    assert load_settings(config).data_dir == Path("here")


def test_a_checkout_keeps_its_data_and_folders_whatever_the_working_folder(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TANDEM_DATA_DIR", raising=False)
    settings = load_settings()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.graphs_dir == PROJECT_ROOT / "dialog_graphs"
    assert settings.intents_dir == PROJECT_ROOT / "intents"


def test_an_installed_copy_keeps_its_data_in_the_users_data_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "checkout", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert settings_module.default_data_dir() == tmp_path / "xdg" / "tandem"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings_module.default_data_dir() == tmp_path / "home" / ".local" / "share" / "tandem"
