"""`tandem story eval`: Tandem's story passages against a naive prompt on the same model, the
checks of both texts (bot/evaluation/story_checks.py), and the report: a table for the terminal,
Markdown with both texts side by side for a person to read.

Each opening is run twice with one sampling seed (derived from its id): through StoryService,
as a user who wrote the opening and said /continue, and as one chat message "Continue this
story:" whose raw answer is kept as it is.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from bot.app import build_language_model, check_language_model, prepare_language_model
from bot.dispatch.registry import SkillRegistry
from bot.evaluation.conversations import FAKE, eval_settings
from bot.evaluation.story_checks import CHECKS, CheckResult, check_text
from bot.evaluation.story_set import StoryOpening
from bot.models.base import ChatMessage, GenerationParams, LanguageModel, Prompt
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.settings import Settings
from bot.story.polish import script_language
from bot.story.service import StoryService
from bot.story.tree import GenerationDone
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.stories import StoryRepo
from skills.story import StorySkill

log = logging.getLogger(__name__)

SIDES = ("tandem", "naive")
NAIVE_PROMPT = {"en": "Continue this story:\n\n{opening}", "ru": "Продолжи эту историю:\n\n{opening}"}

# --- the run ---------------------------------------------------------------------------------------


class SeededModel:
    """The run's model, with fixed sampling seeds: after `reseed(seed)` the n-th request samples
    with seed + n, so both sides of one opening sample alike, run after run, and Tandem's second
    try (a passage in the wrong language is written again) still differs from its first."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self._seed = 1
        self._requests = 0

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def context_window(self) -> int:
        return self.model.context_window

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    def reseed(self, seed: int) -> None:
        self._seed, self._requests = seed, 0

    def _seeded(self, params: GenerationParams) -> GenerationParams:
        if params.seed is not None:
            return params
        self._requests += 1
        return replace(params, seed=self._seed + self._requests - 1)

    def stream(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None) -> AsyncIterator[str]:
        return self.model.stream(prompt, self._seeded(params), cache_key=cache_key)

    async def generate(self, prompt: Prompt, params: GenerationParams, *, cache_key: str | None = None) -> str:
        return await self.model.generate(prompt, self._seeded(params), cache_key=cache_key)

    async def start(self) -> None:
        await self.model.start()

    async def close(self) -> None:
        await self.model.close()


def opening_seed(item: StoryOpening) -> int:
    """The sampling seed of an opening, from its id: adding an opening changes no other's (and
    below 2**31, which every backend takes)."""
    return zlib.crc32(item.id.encode("utf-8")) % 2**30 + 1


@dataclass
class SideResult:
    """One side's continuation of one opening, and how it fared."""

    text: str
    checks: list[CheckResult]
    error: str | None = None  # what went wrong while writing it (the text may still be there)
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if check.passed is False]

    def check(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.name == name)


@dataclass
class OpeningResult:
    item: StoryOpening
    seed: int
    sides: dict[str, SideResult]


@dataclass
class StoryEvalReport:
    model: str
    results: list[OpeningResult]
    seconds: float = 0.0

    def _sides(self, side: str, language: str | None) -> list[SideResult]:
        return [r.sides[side] for r in self.results if language in (None, r.item.language)]

    def tally(self, side: str, check: str, language: str | None = None) -> tuple[int, int]:
        """(passed, applicable) of one check on one side."""
        outcomes = [s.check(check).passed for s in self._sides(side, language)]
        return sum(o is True for o in outcomes), sum(o is not None for o in outcomes)

    def all_passed(self, side: str, language: str | None = None) -> tuple[int, int]:
        texts = self._sides(side, language)
        return sum(not s.failed for s in texts), len(texts)

    def mean_score(self, side: str, check: str, language: str | None = None) -> float | None:
        scores = [s.check(check).score for s in self._sides(side, language)]
        scores = [score for score in scores if score is not None]
        return sum(scores) / len(scores) if scores else None

    def mean_seconds(self, side: str) -> float:
        texts = self._sides(side, None)
        return sum(s.seconds for s in texts) / len(texts) if texts else 0.0


async def tandem_passage(service: StoryService, user_id: int, item: StoryOpening) -> tuple[str, str | None]:
    """The passage Tandem stores after the opening: a story started with it as the user's first
    passage (and the item's genre, premise, memory and lore), then /continue with one candidate."""
    view = await service.start(user_id, text=item.opening, language=item.language, genre=item.genre,
                               premise=item.premise)
    story_id = view.story.id
    if item.memory:
        await service.set_memory(user_id, story_id, item.memory)
    for entry in item.lore:
        await service.set_lore(user_id, story_id, entry.keys, entry.text)
    done = None
    async for event in service.continue_(user_id, story_id, candidates=1):
        if isinstance(event, GenerationDone):
            done = event
    if done is None:
        return "", "the story service ended without a result"
    text = done.candidates[0].text if done.candidates else ""
    return text, "; ".join(done.errors) or None


def naive_params(service: StoryService) -> GenerationParams:
    """The story defaults' length and sampling, without Tandem's stop strings."""
    story = service.defaults
    return GenerationParams(max_new_tokens=story.max_new_tokens, temperature=story.temperature,
                            top_p=story.top_p, repetition_penalty=story.repetition_penalty)


async def naive_passage(model: LanguageModel, item: StoryOpening, params: GenerationParams) -> str:
    """The baseline: one chat message asking to continue the story; the raw answer, stripped."""
    prompt = [ChatMessage("user", NAIVE_PROMPT[item.language].format(opening=item.opening))]
    return (await model.generate(prompt, params)).strip()


Progress = Callable[[OpeningResult, int, int], None]


async def run_openings(service: StoryService, model: SeededModel, user_id: int, openings: Sequence[StoryOpening],
                       *, model_name: str, progress: Progress | None = None) -> StoryEvalReport:
    """Both sides of every opening, one at a time (the model writes one text at a time anyway)."""
    started = time.perf_counter()
    params = naive_params(service)
    results = []
    for number, item in enumerate(openings, start=1):
        seed = opening_seed(item)
        sides = {}
        for side in SIDES:
            model.reseed(seed)
            began = time.perf_counter()
            try:
                if side == "tandem":
                    text, error = await tandem_passage(service, user_id, item)
                else:
                    text, error = await naive_passage(model, item, params), None
            except Exception as exc:  # the report shows it; the other openings still run
                log.exception("story eval failed id=%s side=%s", item.id, side)
                text, error = "", f"{type(exc).__name__}: {exc}"
            sides[side] = SideResult(text, check_text(item, text), error, time.perf_counter() - began)
        results.append(OpeningResult(item, seed, sides))
        if progress is not None:
            progress(results[-1], number, len(openings))
    return StoryEvalReport(model_name, results, time.perf_counter() - started)


_FAKE_SENTENCES = {
    "en": ("The wind changed before anyone spoke.", "Somewhere below, a door closed softly.",
           "Nobody moved for a long moment.", "Then the light went out."),
    "ru": ("Ветер переменился раньше, чем кто-нибудь заговорил.", "Где-то внизу тихо закрылась дверь.",
           "Долго никто не шевелился.", "Потом свет погас."),
}


def story_fake_model() -> FakeLanguageModel:
    """The model of `--model fake`: two sentences in the language asked for (Tandem's instructions
    name it; the naive prompt is written in it), different on every call."""
    calls = 0

    def respond(prompt: Prompt, params: GenerationParams) -> str:
        nonlocal calls
        calls += 1
        text = prompt if isinstance(prompt, str) else "\n".join(m.content for m in prompt)
        language = "ru" if "in Russian" in text else script_language(text) or "en"
        sentences = _FAKE_SENTENCES[language]
        return " ".join(sentences[(calls + i) % len(sentences)] for i in range(2))

    return FakeLanguageModel(script=FakeScript(respond=respond), name=FAKE)


@contextlib.asynccontextmanager
async def story_eval_model(settings: Settings, choice: str) -> AsyncIterator[LanguageModel]:
    """The fake, or the configured model, loaded and tried first (a model that cannot answer
    stops the run at once), and closed after the run."""
    if choice == FAKE:
        model: LanguageModel = story_fake_model()
    else:
        await prepare_language_model(settings)
        model = build_language_model(settings)
    try:
        if choice != FAKE:
            await check_language_model(model, settings.lm.model)
        yield model
    finally:
        await model.close()


@dataclass
class StoryRun:
    """What one run writes with: the story service on a throw-away database, its seeded model,
    the run's user, and the model's name for the report."""

    service: StoryService
    model: SeededModel
    user_id: int
    model_name: str


@contextlib.asynccontextmanager
async def story_run(settings: Settings, choice: str, wrap: Callable[[LanguageModel], SeededModel] = SeededModel,
                    ) -> AsyncIterator[StoryRun]:
    """A story service on a throw-away SQLite database with the configured story defaults, and
    its model wrapped by `wrap`; `choice` is "fake", "default" (the configured lm.model) or any
    lm.model value."""
    with tempfile.TemporaryDirectory(prefix="tandem-story-run-") as folder:
        run_settings = eval_settings(settings, Path(folder), choice)
        async with story_eval_model(run_settings, choice) as model:
            db = Database(run_settings.resolved_database_url)
            try:
                await db.migrate()
                seeded = wrap(model)
                skill = SkillRegistry.configure(StorySkill, run_settings.skills, repo=StoryRepo(db), model=seeded)
                user_id = await ConversationRepo(db).user_for("eval", "story-eval")
                yield StoryRun(skill.service, seeded, user_id, FAKE if choice == FAKE else run_settings.lm.model)
            finally:
                await db.close()


async def evaluate_stories(settings: Settings, openings: Sequence[StoryOpening], choice: str,
                           progress: Progress | None = None) -> StoryEvalReport:
    """Every opening, both sides, in one run (`story_run`)."""
    async with story_run(settings, choice) as run:
        return await run_openings(run.service, run.model, run.user_id, openings, model_name=run.model_name,
                                  progress=progress)


# --- the report ------------------------------------------------------------------------------------


def _columns(report: StoryEvalReport) -> list[tuple[str, str, str | None]]:
    """(heading, side, language) of the table: both sides, then by language when there are two."""
    columns: list[tuple[str, str, str | None]] = [(side, side, None) for side in SIDES]
    languages = sorted({r.item.language for r in report.results})
    if len(languages) > 1:
        columns += [(f"{side} {language}", side, language) for language in languages for side in SIDES]
    return columns


def _rows(report: StoryEvalReport) -> list[list[str]]:
    columns = _columns(report)
    rows = [["check", *(heading for heading, _, _ in columns)]]
    for check in CHECKS:
        cells = []
        for _, side, language in columns:
            passed, applicable = report.tally(side, check, language)
            cells.append(f"{passed}/{applicable}" if applicable else "–")
        rows.append([check, *cells])
    rows.append(["all checks", *(f"{p}/{n}" for p, n in (report.all_passed(s, lang) for _, s, lang in columns))])
    for check, label in (("echo", "mean echo"), ("facts", "mean facts")):
        scores = (report.mean_score(side, check, language) for _, side, language in columns)
        rows.append([label, *("–" if score is None else f"{score:.2f}" for score in scores)])
    return rows


def _errors(report: StoryEvalReport) -> list[str]:
    return [f"{side} {r.item.id}: {r.sides[side].error}" for r in report.results for side in SIDES
            if r.sides[side].error]


def format_table(report: StoryEvalReport) -> str:
    """The figures for the terminal: each check's pass count per side (and per language)."""
    languages = {lang: sum(r.item.language == lang for r in report.results) for lang in ("en", "ru")}
    counts = ", ".join(f"{n} {lang}" for lang, n in languages.items() if n)
    lines = [f"story eval: {len(report.results)} openings ({counts}); model {report.model}; "
             f"one fixed seed per opening; {report.seconds:.0f} s "
             f"(per text: tandem {report.mean_seconds('tandem'):.1f} s, naive {report.mean_seconds('naive'):.1f} s)"]
    rows = _rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    errors = _errors(report)
    if errors:
        lines += ["", f"generation errors ({len(errors)}):", *(f"  {e}" for e in errors)]
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return "<br>".join(text.strip().splitlines()) or "*(no text)*"


def format_markdown(report: StoryEvalReport, set_path: Path | str) -> str:
    """Every opening with both continuations side by side and what each one failed, for a person
    to read and judge what the checks cannot."""
    rows = _rows(report)
    lines = [
        "# Story passages: Tandem against a naive prompt", "",
        f"Model `{report.model}`, set `{set_path}`, {len(report.results)} openings, {date.today().isoformat()}. "
        "Tandem: the opening as the user's first passage, then /continue with one candidate (the stored "
        f"passage). Naive: one chat message, \"{NAIVE_PROMPT['en'].splitlines()[0]}\" and the opening, the raw "
        "answer. Both with the story defaults' length and sampling and the same seed per opening.", "",
        "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(row) + " |" for row in rows[1:]), "",
    ]
    for result in report.results:
        item = result.item
        about = ", ".join(x for x in (item.language, item.genre, f"seed {result.seed}") if x)
        lines += [f"## {item.id} ({about})", "", *(f"> {line}" for line in item.opening.splitlines()), ""]
        notes = [f"premise: {item.premise}" if item.premise else "", f"memory: {item.memory.strip()}" if item.memory
                 else "", f"lore: {'; '.join(', '.join(e.keys) for e in item.lore)}" if item.lore else "",
                 f"facts: {', '.join(item.facts)}" if item.facts else "",
                 f"stated: {', '.join(item.facts_exact)}" if item.facts_exact else ""]
        lines += [f"*{'. '.join(n for n in notes if n)}*", ""] if any(notes) else []
        tandem, naive = result.sides["tandem"], result.sides["naive"]
        lines += ["| Tandem | naive |", "|---|---|", f"| {_cell(tandem.text)} | {_cell(naive.text)} |",
                  f"| {_failures(tandem)} | {_failures(naive)} |", ""]
    return "\n".join(lines)


def _failures(side: SideResult) -> str:
    failed = [f"**{c.name}**: {c.detail}" if c.detail else f"**{c.name}**" for c in side.failed]
    if side.error:
        failed.append(f"**error**: {side.error}")
    return _cell("; ".join(failed)) if failed else "all checks pass"
