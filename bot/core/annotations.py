"""Annotations of a user message and the Annotator protocol that produces them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class IntentGuess:
    """One intent hypothesis; `source` names the annotator that made it (rules, embedding, ...)."""

    name: str
    confidence: float
    source: str


@dataclass
class Annotations:
    """Everything the annotators found out about one message; stored with the turn.

    `intent` is None when nothing claimed the message with confidence (out of scope).
    `values` holds the other annotators' results by annotator name (sentiment, toxicity, ...).
    A costly annotator can `defer` its value instead: it is computed only when a skill or graph
    asks for it with `await value(name)`, and stored with the turn only then.
    """

    language: str | None = None
    intent: IntentGuess | None = None
    ranking: list[IntentGuess] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    _deferred: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict, repr=False)

    @property
    def intent_name(self) -> str | None:
        return self.intent.name if self.intent else None

    def defer(self, name: str, compute: Callable[[], Awaitable[Any]]) -> None:
        self._deferred[name] = compute

    async def value(self, name: str) -> Any:
        """An annotator's value, computing a deferred one now (once); None when no annotator gave it."""
        compute = self._deferred.pop(name, None)
        if compute is not None:
            self.values[name] = await compute()
        return self.values.get(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "intent": _guess_json(self.intent),
            "ranking": [_guess_json(g) for g in self.ranking[:5]],
            **self.values,
        }


def _guess_json(guess: IntentGuess | None) -> dict[str, Any] | None:
    if guess is None:
        return None
    return {"name": guess.name, "confidence": round(guess.confidence, 4), "source": guess.source}


@runtime_checkable
class Annotator(Protocol):
    """A plug-in that reads a message and fills in part of its Annotations.

    Annotators run in the order they are registered; an intent annotator should leave
    `annotations.intent` alone when an earlier one (e.g. rules) already set it.
    """

    name: str

    async def annotate(self, text: str, annotations: Annotations) -> None: ...


# Annotators may own models (loaded in worker threads) and workers; these call the optional
# lifecycle methods in order, for every annotator that has them.

async def start_annotators(annotators: list[Annotator]) -> None:
    """Load the annotators' models now (`start`), so the first user does not wait."""
    await _each(annotators, "start")


async def warm_up_annotators(annotators: list[Annotator]) -> None:
    """Load what the annotators otherwise load on demand (`warm_up`: the intent classifier's
    encoders of other languages); `tandem run` runs it in the background while it serves."""
    await _each(annotators, "warm_up")


async def close_annotators(annotators: list[Annotator]) -> None:
    await _each(annotators, "close")


async def _each(annotators: list[Annotator], method: str) -> None:
    for annotator in annotators:
        call = getattr(annotator, method, None)
        if call is not None:
            await call()
