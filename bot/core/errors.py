"""The error hierarchy: strict at load time (ConfigError, GraphError), forgiving at run time."""

from __future__ import annotations

from collections.abc import Mapping


class BotError(Exception):
    """Base of every error Tandem raises on purpose."""


class ConfigError(BotError):
    """A setting or data file is wrong; start-up stops and the message names the key or file."""


class GraphError(ConfigError):
    """A dialog graph failed validation; the message names the file, node and field."""


class CatalogueError(ConfigError):
    """The intent catalogue is malformed or references something unknown."""


class ModelError(BotError):
    """A model failed to load or to answer."""


class ModelTimeout(ModelError):
    """A model did not answer within its time limit."""


class ModelUnavailable(ModelError):
    """A model backend cannot be reached or is not installed."""


class ModelCrashed(ModelUnavailable):
    """The model's worker process died (a crash, an OOM kill, a hang); it is being restarted."""


class StorageError(BotError):
    """The database refused or failed an operation."""


class InputError(BotError):
    """User input that Tandem will not process; the message is safe to show to the user.

    `texts` gives the message per language ({"en": ..., "ru": ...}) where it has been translated;
    `str(error)` is the English one, `in_language(code)` the one for the user.
    """

    def __init__(self, message: str = "", texts: Mapping[str, str] | None = None) -> None:
        self.texts = dict(texts or {})
        super().__init__(message or self.texts.get("en", ""))

    def in_language(self, language: str | None) -> str:
        return self.texts.get(language or "") or str(self)


def refusal(en: str, ru: str) -> InputError:
    """An InputError for the user in both languages: `raise refusal("Nothing to redo.", "Возвращать нечего.")`."""
    return InputError(texts={"en": en, "ru": ru})


class NotFound(BotError):
    """An id that does not exist, or that the caller may not see (the two are not told apart)."""
