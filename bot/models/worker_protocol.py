"""The wire format between the server and its model worker process: one JSON object per line.

Server → worker: `{"op": "generate", "id", "prompt", "params", "cache_key"}`, `{"op": "cancel", "id"}`,
`{"op": "ping", "id"}`. Worker → server: `{"ev": "ready", ...}` or `{"ev": "failed", ...}` once after
loading, then `{"ev": "piece", "id", "text"}`, `{"ev": "done", "id", "stats"}`,
`{"ev": "error", "id", "kind", "message"}` and `{"ev": "pong", "id"}`. Framework-free.
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict
from typing import Any

from bot.core.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from bot.models.base import ChatMessage, GenerationParams, Prompt

# The longest line either side sends; a prompt is at most the context window (a few 10k chars).
MAX_LINE_BYTES = 8 * 1024 * 1024

_ERRORS: dict[str, type[ModelError] | type[ConfigError]] = {
    "ModelError": ModelError,
    "ModelTimeout": ModelTimeout,
    "ModelUnavailable": ModelUnavailable,
    "ConfigError": ConfigError,
}


def encode(message: dict[str, Any]) -> bytes:
    # ensure_ascii keeps lone surrogates and odd code points from breaking the line format.
    return json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a protocol line must be a JSON object")
    return message


def prompt_to_wire(prompt: Prompt) -> str | list[dict[str, str]]:
    if isinstance(prompt, str):
        return prompt
    return [{"role": m.role, "content": m.content} for m in prompt]


def prompt_from_wire(value: Any) -> Prompt:
    if isinstance(value, str):
        return value
    return [ChatMessage(m["role"], m["content"]) for m in value]


def params_to_wire(params: GenerationParams) -> dict[str, Any]:
    return asdict(params)


def params_from_wire(value: dict[str, Any]) -> GenerationParams:
    return GenerationParams(**value)


def error_to_wire(exc: BaseException) -> dict[str, str]:
    kind = next((name for name, cls in _ERRORS.items() if type(exc) is cls), None)
    if kind is None:
        kind = "ModelTimeout" if isinstance(exc, ModelTimeout | TimeoutError) else (
            "ConfigError" if isinstance(exc, ConfigError) else "ModelError")
    return {"kind": kind, "message": str(exc) or type(exc).__name__}


def error_from_wire(kind: str, message: str) -> BaseException:
    return _ERRORS.get(kind, ModelError)(message)


def describe_exit(returncode: int | None) -> str:
    """`signal SIGSEGV` or `exit code 3`: what the log line says about a worker that ended."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"
