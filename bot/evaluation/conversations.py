"""Runs the conversation evaluation set through a real Tandem and collects pass/fail per turn and
per conversation (each conversation a user of its own, on a throw-away SQLite database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from bot.app import Tandem, build_app, check_language_model, prepare_language_model
from bot.core.messages import Reply
from bot.evaluation.checks import Observed, property_failures, route_failures
from bot.evaluation.conversation_set import (
    ConversationCase,
    ExpectedTurn,
    copied_examples,
)
from bot.evaluation.report import EvalReport
from bot.models.base import GenerationParams, Prompt
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.settings import Settings
from bot.storage.schema import Message
from bot.testing import Replay

log = logging.getLogger(__name__)

FAKE = "fake"
DEFAULT = "default"
# Routes that are no skill's name: a graph node answered, or the dispatcher refused the input.
BUILT_IN_ROUTES = frozenset({"graph", "dispatcher"})


@dataclass
class TurnResult:
    number: int
    user: str
    expected: ExpectedTurn
    reply: Reply
    node: str | None
    failures: list[str]
    # False with the fake model on a turn whose properties need the real one (only its route counts).
    properties_checked: bool = True

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class ConversationResult:
    case: ConversationCase
    turns: list[TurnResult] = field(default_factory=list)
    transcript: str = ""
    # A turn that raised instead of answering (the dispatcher should never let that happen).
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and len(self.turns) == len(self.case.turns) and all(t.passed for t in self.turns)


# --- the model -----------------------------------------------------------------------------------

_FAKE_LINES = {
    "en": (("The lantern", "A small fox", "The old ferry", "A paper kite", "The night train", "A quiet owl",
            "The baker's cat", "A silver key", "The lighthouse keeper"),
           ("glowed by the river", "waited at the crossroads", "drifted over the hills", "hid under the bridge",
            "found a forgotten map", "listened to the rain", "crossed the frozen lake"),
           ("Nobody noticed at first.", "It felt like the start of something.", "The evening grew calm.",
            "Somewhere a bell rang twice.", "The air smelled of pine.")),
    "ru": (("Фонарь", "Маленький лис", "Старый паром", "Бумажный змей", "Ночной поезд", "Тихий филин",
            "Кот пекаря", "Серебряный ключ", "Смотритель маяка"),
           ("светился у реки", "ждал на перекрёстке", "плыл над холмами", "прятался под мостом",
            "нашёл забытую карту", "слушал дождь", "пересёк замёрзшее озеро"),
           ("Сначала никто не заметил.", "Казалось, что-то начинается.", "Вечер стал тихим.",
            "Где-то дважды прозвонил колокол.", "Пахло хвоей.")),
}


def eval_fake_model() -> FakeLanguageModel:
    """The fake generative model of a run without the real one: two short sentences in the language
    the prompt asks for, different on every call (so a story's passages never repeat)."""
    calls = 0

    def respond(prompt: Prompt, params: GenerationParams) -> str:
        nonlocal calls
        calls += 1
        text = prompt if isinstance(prompt, str) else "\n".join(m.content for m in prompt)
        language = "ru" if "in Russian" in text else "en"
        subjects, actions, endings = _FAKE_LINES[language]
        subject, action = subjects[calls % len(subjects)], actions[(calls // len(subjects)) % len(actions)]
        return f"{subject} {action}. {endings[calls % len(endings)]}"

    return FakeLanguageModel(script=FakeScript(respond=respond), max_concurrent=4, name=FAKE)


def eval_settings(settings: Settings, database_dir: Path, model: str) -> Settings:
    """The settings of a run: a fresh SQLite file in `database_dir` and no Redis (a run is one
    process); `model` is "fake", "default" (the configured lm.model) or any lm.model value."""
    update: dict = {
        "database_url": SecretStr(f"sqlite+aiosqlite:///{database_dir / 'eval.sqlite3'}"),
        "server": settings.server.model_copy(update={"redis_url": None}),
    }
    if model not in (FAKE, DEFAULT):
        update["lm"] = settings.lm.model_copy(update={"model": model})
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def eval_tandem(settings: Settings, model: str = DEFAULT) -> AsyncIterator[Tandem]:
    """A Tandem built for one run and closed after it; its database is deleted with it. A real
    model is loaded and tried first, so a model that cannot answer stops the run at once."""
    with tempfile.TemporaryDirectory(prefix="tandem-eval-") as folder:
        run_settings = eval_settings(settings, Path(folder), model)
        if model == FAKE:
            tandem = await build_app(run_settings, language_model=eval_fake_model())
        else:
            await prepare_language_model(run_settings)
            tandem = await build_app(run_settings)
        try:
            if model != FAKE:
                await check_language_model(tandem.language_model, run_settings.lm.model)
            yield tandem
        finally:
            await tandem.close()


# --- the run -------------------------------------------------------------------------------------


async def _answered_node(tandem: Tandem, reply: Reply) -> str | None:
    """The graph node that answered, as the dispatcher stored it with the bot's message."""
    if reply.message_id is None:
        return None
    async with tandem.db.transaction() as session:
        row = (await session.execute(select(Message.flow, Message.node).where(Message.id == reply.message_id))).first()
    return f"{row.flow}.{row.node}" if row is not None and row.flow and row.node else None


async def run_conversation(tandem: Tandem, case: ConversationCase, *, with_model: bool) -> ConversationResult:
    """Replay one conversation as a user of its own; every turn is checked, also after a failure."""
    replay = Replay(tandem.handle_turn, channel=case.channel, user_id=f"eval:{case.id}", language=case.language)
    result = ConversationResult(case)
    try:
        for number, turn in enumerate(case.turns, start=1):
            reply = await replay.say(turn.user)
            node = await _answered_node(tandem, reply)
            seen = Observed(reply, node, tuple(r.text for r in replay.replies[:-1]))
            checked = with_model or not turn.needs_model
            failures = route_failures(turn, seen) + (property_failures(turn, seen) if checked else [])
            result.turns.append(TurnResult(number, turn.user, turn, reply, node, failures, checked))
    except Exception as exc:  # the report shows it; the other conversations still run
        log.exception("evaluated conversation failed id=%s", case.id)
        result.error = f"{type(exc).__name__}: {exc}"
    result.transcript = replay.transcript()
    return result


def unknown_expectations(tandem: Tandem, cases: Sequence[ConversationCase]) -> list[str]:
    """Routes no skill of this bot has and graph nodes no flow has: their turns fail, and the
    report says why (a skill still being built, or a typo in the set)."""
    routes = set(tandem.skills.names) | BUILT_IN_ROUTES
    registry = getattr(tandem.dispatcher.graphs, "registry", None)
    notes: dict[str, list[str]] = {}
    for case in cases:
        for number, turn in enumerate(case.turns, start=1):
            for route in turn.routes:
                if route not in routes:
                    notes.setdefault(f"route {route!r}: no such skill", []).append(f"{case.id}#{number}")
            if turn.node is not None and registry is not None and registry.node(*turn.node.split(".", 1)) is None:
                notes.setdefault(f"node {turn.node!r}: no such graph node", []).append(f"{case.id}#{number}")
    return [f"{what} ({len(where)} turns, e.g. {', '.join(where[:3])})" for what, where in sorted(notes.items())]


async def run_conversations(
    tandem: Tandem,
    cases: Sequence[ConversationCase],
    *,
    with_model: bool,
    concurrency: int = 1,
    model_name: str = "",
    progress: Callable[[ConversationResult, int, int], None] | None = None,
) -> EvalReport:
    """Run every conversation, `concurrency` at a time; the report keeps the set's order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(case: ConversationCase) -> ConversationResult:
        nonlocal done
        async with gate:
            result = await run_conversation(tandem, case, with_model=with_model)
        done += 1
        if progress is not None:
            progress(result, done, len(cases))
        return result

    results = await asyncio.gather(*(one(case) for case in cases))
    copied = [f"{c.conversation}#{c.turn} {c.text!r} is an example of intent {c.intent!r}: it measures "
              "nothing the bot was not shown" for c in copied_examples(cases, tandem.catalogue)]
    return EvalReport(list(results), model=model_name, properties_of_model=with_model,
                      warnings=unknown_expectations(tandem, cases) + copied)
