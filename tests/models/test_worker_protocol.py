"""The server–worker wire format: prompts, params and errors survive the trip, exits are described."""

from __future__ import annotations

import signal

import pytest

from bot.core.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from bot.models import worker_protocol as wire
from bot.models.base import ChatMessage, GenerationParams


def test_a_chat_prompt_and_its_params_round_trip() -> None:
    prompt = [ChatMessage("system", "Be brief."), ChatMessage("user", "Привет \ud800 \x00 🦊")]
    params = GenerationParams(max_new_tokens=5, stop=("\n\n",), banned_words=("dragon",), seed=7)
    line = wire.encode({"op": "generate", "prompt": wire.prompt_to_wire(prompt), "params": wire.params_to_wire(params)})
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the text holds
    message = wire.decode(line)
    assert wire.prompt_from_wire(message["prompt"]) == prompt
    assert wire.params_from_wire(message["params"]) == params
    assert wire.prompt_from_wire("Once upon a time") == "Once upon a time"


@pytest.mark.parametrize("error", [ModelError("x"), ModelTimeout("slow"), ModelUnavailable("gone"), ConfigError("bad")])
def test_errors_keep_their_kind(error: Exception) -> None:
    fields = wire.error_to_wire(error)
    back = wire.error_from_wire(fields["kind"], fields["message"])
    assert type(back) is type(error) and str(back) == str(error)


def test_other_errors_become_model_errors() -> None:
    assert type(wire.error_from_wire(**wire.error_to_wire(ValueError("odd")))) is ModelError
    assert type(wire.error_from_wire(**wire.error_to_wire(TimeoutError()))) is ModelTimeout
    assert type(wire.error_from_wire("Nonsense", "?")) is ModelError


def test_a_line_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError):
        wire.decode(b"[1, 2]\n")
    with pytest.raises(ValueError):
        wire.decode(b"{not json\n")


def test_exits_are_described_by_signal_or_code() -> None:
    assert wire.describe_exit(-signal.SIGSEGV) == "signal SIGSEGV"
    assert wire.describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert wire.describe_exit(3) == "exit code 3"
    assert wire.describe_exit(None) == "still running"
