"""Benchmark of story candidates: time to the first word shown and to all candidates, with the
story's prompt evaluated once and shared by its candidates, against evaluating it afresh for each.

Run: .venv/bin/python -m bench.candidates [--model default] [--openings 3] [--candidates 3]

Each opening of evals/stories/en.yaml is started as a story and continued through StoryService,
as the server does it, in both modes, in an ABBA order over the openings so that a machine that
slows down during the run favours neither. "shared" is Tandem as it runs: every candidate of a
passage is asked with the same prompt under the story's cache key, so the backend reuses the
prompt's KV cache and only the first candidate pays for evaluating it. "fresh" is the baseline:
each request gets a one-line nonce in front of its system message, so nothing of the prompt is
reused (the prompt is otherwise the same, a few tokens longer).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.evaluation.story_set import load_openings
from bot.evaluation.stories import SeededModel, opening_seed, story_run
from bot.models.base import ChatMessage, GenerationParams, Prompt
from bot.settings import PROJECT_ROOT, Settings
from bot.story.tree import CandidateDone, GenerationDone, PassageDelta
from bench.turns import machine

log = logging.getLogger("bench.candidates")
MODES = ("shared", "fresh")


class TimedModel(SeededModel):
    """The run's model: fixed seeds (as the story eval), the time of each request's first piece,
    and in "fresh" mode a nonce that keeps the backend from reusing any of the prompt."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.fresh = False
        self.first_piece_s: list[float] = []
        self._nonce = itertools.count(1)

    def _prompt(self, prompt: Prompt) -> Prompt:
        if not self.fresh or isinstance(prompt, str):
            return prompt
        first, *rest = prompt
        return [ChatMessage(first.role, f"(request {next(self._nonce)})\n{first.content}"), *rest]

    def stream(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None) -> AsyncIterator[str]:
        return self._timed(super().stream(self._prompt(prompt), params, cache_key=cache_key))

    async def _timed(self, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
        started = time.perf_counter()
        first = True
        try:
            async for piece in pieces:
                if first:
                    self.first_piece_s.append(time.perf_counter() - started)
                    first = False
                yield piece
        finally:
            await pieces.aclose()


@dataclass
class Run:
    mode: str
    opening: str
    first_word_s: float = 0.0  # from the request to the first text shown to the writer
    candidate_s: list[float] = field(default_factory=list)  # to each candidate stored
    first_piece_s: list[float] = field(default_factory=list)  # per model request: to its first token
    errors: list[str] = field(default_factory=list)


async def one_run(service, model: TimedModel, user_id: int, item, mode: str, candidates: int) -> Run:
    view = await service.start(user_id, text=item.opening, language=item.language, genre=item.genre,
                               premise=item.premise)
    model.fresh = mode == "fresh"
    model.reseed(opening_seed(item))
    model.first_piece_s = []
    run = Run(mode, item.id)
    started = time.perf_counter()
    async for event in service.continue_(user_id, view.story.id, candidates=candidates):
        now = time.perf_counter() - started
        if isinstance(event, PassageDelta) and event.text and not run.first_word_s:
            run.first_word_s = now
        elif isinstance(event, CandidateDone):
            run.candidate_s.append(now)
        elif isinstance(event, GenerationDone):
            run.errors = list(event.errors)
    run.first_piece_s = list(model.first_piece_s)
    return run


async def measure(settings: Settings, choice: str, openings: int, candidates: int) -> list[Run]:
    every = load_openings(PROJECT_ROOT / "evals" / "stories" / "en.yaml")
    items, warm_up = every[:min(openings, len(every) - 1)], every[-1]  # the warm-up shares no prompt with them
    runs: list[Run] = []
    async with story_run(settings, choice, wrap=TimedModel) as story:
        service, model, user_id = story.service, story.model, story.user_id
        await one_run(service, model, user_id, warm_up, "shared", 1)  # loads the model; not counted
        for number, item in enumerate(items):
            for mode in MODES if number % 2 == 0 else MODES[::-1]:
                run = await one_run(service, model, user_id, item, mode, candidates)
                runs.append(run)
                print(f"  {item.id:24} {mode:6} first word {run.first_word_s:5.1f} s  candidates "
                      + " ".join(f"{s:5.1f}" for s in run.candidate_s) + " s  first tokens "
                      + " ".join(f"{s:4.2f}" for s in run.first_piece_s) + " s"
                      + (f"  errors: {run.errors}" if run.errors else ""), flush=True)
    return runs


def summary(runs: list[Run]) -> list[str]:
    """Medians per mode, and shared against fresh as ratios (below 1 = faster)."""
    rows = []
    medians: dict[str, dict[str, float]] = {}
    for mode in MODES:
        mine = [r for r in runs if r.mode == mode]
        later = [s for r in mine for s in r.first_piece_s[1:]]  # the requests after each passage's first
        medians[mode] = {
            "first word": statistics.median(r.first_word_s for r in mine),
            "first candidate": statistics.median(r.candidate_s[0] for r in mine if r.candidate_s),
            "all candidates": statistics.median(r.candidate_s[-1] for r in mine if r.candidate_s),
            "first token, first request": statistics.median(r.first_piece_s[0] for r in mine if r.first_piece_s),
            "first token, later requests": statistics.median(later) if later else float("nan"),
        }
    rows.append("| median (s) | shared prompt | fresh prompt (baseline) | shared / fresh |")
    rows.append("|---|---|---|---|")
    for name in medians["shared"]:
        shared, fresh = medians["shared"][name], medians["fresh"][name]
        rows.append(f"| {name} | {shared:.2f} | {fresh:.2f} | {shared / fresh:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help='"default" (lm.model), "fake", or any lm.model value')
    parser.add_argument("--openings", type=int, default=4, help="the first N of evals/stories/en.yaml (one is kept for the warm-up)")
    parser.add_argument("--candidates", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    host = machine()
    print(f"bench.candidates: {args.openings} openings x {args.candidates} candidates, model {args.model}; "
          f"{host['cpu']}, {host['cpus']} CPUs, AMX {'yes' if host['amx'] else 'no'}")
    runs = asyncio.run(measure(settings, args.model, args.openings, args.candidates))
    print()
    print("\n".join(summary(runs)))


if __name__ == "__main__":
    main()
