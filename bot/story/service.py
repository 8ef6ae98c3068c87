"""StoryService: every story action (start, continue, choose, retry, undo, redo, edit, branch, ...)
for the story skill, the HTTP API and later channels, without going through text commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from bot.core.errors import ConfigError, ModelError, NotFound, StorageError, refusal
from bot.core.text import is_blank
from bot.models.base import LanguageModel
from bot.story.export import FORMATS, export_json, export_markdown, export_text, parse_import
from bot.story.generation import PassageGenerator
from bot.story.quality import CandidateReport, ranked
from bot.story.settings import StorySettings
from bot.story.tree import (
    CandidateDone, GenerationDone, PassageDelta, StoryView, build_view, continuation, passage_json, path_to, siblings,
    swipe_positions,
)
from bot.storage.leases import poll_until, start_renewing
from bot.storage.stories import LoreRecord, NewPassage, PassageRecord, StoryRecord, StoryRepo

log = logging.getLogger(__name__)

StoryEvent = PassageDelta | CandidateDone | GenerationDone
MAX_TITLE_CHARS = 200
# Longest genre, style and premise, in characters (genre and style are VARCHAR columns).
DETAIL_LIMITS = {"genre": 100, "style": 200, "premise": 2000}
DEFAULT_TITLE = {"en": "Untitled story", "ru": "История без названия"}
# The fields a "too long" or "must be text" refusal names, in Russian (genitive: "Текст завязки ...").
FIELD_OF = {"genre": "жанра", "style": "стиля", "premise": "завязки", "memory": "памяти",
            "author's note": "заметки автора"}
# How long a story stays locked by a process that stopped renewing (it died mid-passage).
STORY_LEASE_S = 15.0


class StoryService:
    """Story actions for one user at a time; `user_id` is always the acting user, and another
    user's story is NotFound. Actions on one story run one at a time, across processes too
    (`_locked`): every way in (chat skill, story API, Telegram buttons) goes through here."""

    def __init__(self, repo: StoryRepo, model: LanguageModel, *, defaults: StorySettings | None = None,
                 max_passage_chars: int = 4000, summary_tokens: int = 150, lease_s: float = STORY_LEASE_S) -> None:
        self.repo = repo
        self.model = model
        self.defaults = defaults or StorySettings()
        self.max_passage_chars = max_passage_chars
        self.generator = PassageGenerator(repo, model, summary_tokens=summary_tokens)
        self.lease_s = lease_s
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def _locked(self, story_id: int) -> AsyncIterator[None]:
        """Act on the story alone: this process's actions queue on an asyncio lock (no polling
        among them), and the one at the front takes the story's lease in SQL, which another
        process holding it makes wait; renewed while a passage is generated."""
        lock = self._locks.get(story_id)
        if lock is None:
            lock = self._locks[story_id] = asyncio.Lock()
        async with lock:
            holder = uuid.uuid4().hex

            async def taken() -> bool:
                return await self.repo.take_lease(story_id, holder, self.lease_s)

            await poll_until(taken)
            renewing = start_renewing(lambda: self.repo.renew_lease(story_id, holder, self.lease_s), self.lease_s,
                                      f"story lease story={story_id}")
            try:
                yield
            finally:
                renewing.cancel()
                # Shielded: released even while the action is being cancelled (else the story
                # would stay locked for a whole lease).
                with contextlib.suppress(StorageError):
                    await asyncio.shield(self.repo.release_lease(story_id, holder))

    # --- checks ------------------------------------------------------------------

    def check_passage(self, text: object) -> str:
        if not isinstance(text, str) or is_blank(text):
            raise refusal("That passage is empty. Write what happens next, or say /continue and I'll write it.",
                           "Отрывок пустой. Напиши, что будет дальше, или скажи /continue, и я напишу сам.")
        text = text.strip()
        if len(text) > self.max_passage_chars:
            raise refusal(f"That passage is too long ({len(text)} characters; the limit is "
                           f"{self.max_passage_chars}). Please send it in shorter parts.",
                           f"Отрывок слишком длинный (символов: {len(text)}, а можно не больше "
                           f"{self.max_passage_chars}). Пришли его частями покороче.")
        return text

    @staticmethod
    def check_title(title: object) -> str:
        if not isinstance(title, str) or is_blank(title):
            raise refusal("The title is empty. Give the story a name, e.g. /rename The Lantern.",
                           "Название пустое. Дай истории имя, например /rename Фонарь.")
        title = " ".join(title.split())
        if len(title) > MAX_TITLE_CHARS:
            raise refusal(f"That title is too long ({len(title)} characters; the limit is {MAX_TITLE_CHARS}).",
                           f"Название слишком длинное (символов: {len(title)}, а можно не больше {MAX_TITLE_CHARS}).")
        return title

    @staticmethod
    def check_details(**details: str | None) -> None:
        """InputError when a genre, style or premise is over its limit (on every way in: start, patch, import)."""
        for label, value in details.items():
            limit = DETAIL_LIMITS[label]
            if isinstance(value, str) and len(value) > limit:
                raise refusal(f"The {label} is too long ({len(value)} characters; the limit is {limit}).",
                               f"Текст {FIELD_OF[label]} слишком длинный (символов: {len(value)}, "
                               f"а можно не больше {limit}).")

    def settings_of(self, story: StoryRecord) -> StorySettings:
        return StorySettings.load(story.settings, self.defaults)

    async def _state(self, user_id: int, story_id: int) -> tuple[StoryRecord, dict[int, PassageRecord]]:
        story = await self.repo.get_story(user_id, story_id)
        return story, await self.repo.passages(user_id, story_id)

    async def view(self, user_id: int, story_id: int) -> StoryView:
        story, tree = await self._state(user_id, story_id)
        return build_view(story, tree, self.settings_of(story).model_dump())

    # --- stories -----------------------------------------------------------------

    async def start(self, user_id: int, *, title: str | None = None, genre: str | None = None,
                    premise: str | None = None, style: str | None = None, language: str = "en",
                    text: str | None = None, settings: dict[str, Any] | None = None) -> StoryView:
        """A new story; `text` is the user's first passage (else the model opens it on /continue)."""
        language = language if language in ("en", "ru") else "en"
        # No title, or one that shows nothing, is the default title.
        title = self.check_title(title) if title and not is_blank(title) else DEFAULT_TITLE[language]
        chosen = self.defaults.changed(settings) if settings else self.defaults
        first = self.check_passage(text) if text is not None else None
        self.check_details(genre=genre, style=style, premise=premise)
        story = await self.repo.create_story(user_id, title, language=language, genre=genre or None,
                                             premise=premise or None, style=style or None,
                                             settings=chosen.model_dump())
        if first is not None:
            await self.repo.add_passages(user_id, story.id, [NewPassage("user", first)], cursor={})
        log.info("story started story=%s user=%s language=%s", story.id, user_id, language)
        return await self.view(user_id, story.id)

    async def list_stories(self, user_id: int) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "title": s.title, "language": s.language, "passages": n, "genre": s.genre,
             "updated_at": s.updated_at.isoformat()}
            for s, n in await self.repo.list_stories(user_id)
        ]

    async def rename(self, user_id: int, story_id: int, title: str) -> StoryView:
        await self.repo.update_story(user_id, story_id, title=self.check_title(title))
        return await self.view(user_id, story_id)

    async def delete(self, user_id: int, story_id: int) -> None:
        async with self._locked(story_id):
            await self.repo.delete_story(user_id, story_id)
        log.info("story deleted story=%s user=%s", story_id, user_id)

    async def set_memory(self, user_id: int, story_id: int, text: str) -> StoryView:
        await self.repo.update_story(user_id, story_id, memory=self._check_note(text, "memory"))
        return await self.view(user_id, story_id)

    async def set_author_note(self, user_id: int, story_id: int, text: str) -> StoryView:
        await self.repo.update_story(user_id, story_id, author_note=self._check_note(text, "author's note"))
        return await self.view(user_id, story_id)

    async def update_details(self, user_id: int, story_id: int, fields: dict[str, object]) -> StoryView:
        """Change title, memory, author's note, genre, premise and style at once: every field is
        checked first, so a refused one changes nothing (no half-applied edit)."""
        checked: dict[str, str | None] = {}
        if "title" in fields:
            checked["title"] = self.check_title(fields["title"])
        if "memory" in fields:
            checked["memory"] = self._check_note(fields["memory"], "memory")
        if "author_note" in fields:
            checked["author_note"] = self._check_note(fields["author_note"], "author's note")
        for key in ("genre", "premise", "style"):
            if key in fields:
                value = fields[key]
                if value is not None and not isinstance(value, str):
                    raise refusal(f"`{key}` must be a string.", f"Поле `{key}` должно быть строкой.")
                checked[key] = value.strip() or None if isinstance(value, str) else None
        self.check_details(**{k: v for k, v in checked.items() if k in ("genre", "premise", "style")})
        if checked:
            await self.repo.update_story(user_id, story_id, **checked)
        return await self.view(user_id, story_id)

    def _check_note(self, text: object, label: str) -> str:
        if not isinstance(text, str):
            raise refusal(f"The {label} must be text.", f"Для {FIELD_OF[label]} нужен текст.")
        if len(text) > self.max_passage_chars:
            raise refusal(f"The {label} is too long ({len(text)} characters; the limit is "
                           f"{self.max_passage_chars}).",
                           f"Текст {FIELD_OF[label]} слишком длинный (символов: {len(text)}, "
                           f"а можно не больше {self.max_passage_chars}).")
        return text.strip()

    async def lore(self, user_id: int, story_id: int) -> list[LoreRecord]:
        return await self.repo.lore(user_id, story_id)

    async def count_tokens(self, text: str) -> int | None:
        """`text`'s length in the model's tokens (what a lore entry costs the prompt); None while
        the model cannot be started, so a lore editor still works without one."""
        try:
            await self.generator.ready()
            return self.model.count_tokens(text)
        except (ModelError, ConfigError) as exc:
            log.info("tokens not counted (no model): %s", exc)
            return None

    async def set_lore(self, user_id: int, story_id: int, keys: Sequence[str], text: str,
                       enabled: bool = True) -> LoreRecord:
        keys, text = self._check_lore(keys, text)
        return await self.repo.set_lore(user_id, story_id, keys, text, enabled)

    async def update_lore(self, user_id: int, story_id: int, lore_id: int, *, keys: Sequence[str] | None = None,
                          text: str | None = None, enabled: bool | None = None) -> LoreRecord:
        """Change an entry's keys, text or switch; what is not given stays."""
        current = next((e for e in await self.repo.lore(user_id, story_id) if e.id == lore_id), None)
        if current is None:
            raise NotFound(f"lore entry {lore_id}")
        checked_keys, checked_text = self._check_lore(current.keys if keys is None else keys,
                                                      current.text if text is None else text)
        return await self.repo.update_lore(user_id, story_id, lore_id, keys=checked_keys, text=checked_text,
                                           enabled=enabled)

    def _check_lore(self, keys: Sequence[str], text: object) -> tuple[list[str], str]:
        keys = [k.strip() for k in keys if isinstance(k, str) and k.strip()]
        if not keys or not isinstance(text, str) or not text.strip():
            raise refusal("A lore entry needs keywords and text, e.g. /lore dragon, Smaug: an old red dragon.",
                           "Для записи о мире нужны ключевые слова и текст, например "
                           "/lore дракон, Смауг: старый красный дракон.")
        if len(", ".join(keys)) > 300 or len(text) > self.max_passage_chars:
            raise refusal("That lore entry is too long.", "Эта запись о мире слишком длинная.")
        return keys, text.strip()

    async def remove_lore(self, user_id: int, story_id: int, lore_id: int) -> None:
        await self.repo.remove_lore(user_id, story_id, lore_id)

    async def update_settings(self, user_id: int, story_id: int, changes: dict[str, Any]) -> StorySettings:
        async with self._locked(story_id):
            story = await self.repo.get_story(user_id, story_id)
            settings = self.settings_of(story).changed(changes)
            await self.repo.update_story(user_id, story_id, settings=settings.model_dump())
            return settings

    # --- writing -----------------------------------------------------------------

    async def write(self, user_id: int, story_id: int, text: str) -> StoryView:
        """Add the user's passage after the head, without asking the model for anything."""
        text = self.check_passage(text)
        async with self._locked(story_id):
            story = await self.repo.get_story(user_id, story_id)
            await self.repo.add_passages(user_id, story_id, [NewPassage("user", text, story.head_id)], cursor={})
        return await self.view(user_id, story_id)

    async def continue_(self, user_id: int, story_id: int, *, text: str | None = None,
                        candidates: int | None = None) -> AsyncIterator[StoryEvent]:
        """Optionally add the user's passage, then generate candidates for the next one.
        Pending candidates of an earlier turn are set aside (they stay stored)."""
        text = self.check_passage(text) if text is not None else None
        n = self._check_count(candidates)
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            user_passage = None
            if text is not None:
                story, (user_passage,) = await self.repo.add_passages(
                    user_id, story_id, [NewPassage("user", text, story.head_id)], cursor={}
                )
                tree[user_passage.id] = user_passage
            async for event in self._generate(user_id, story, tree, story.head_id, n, user_passage):
                yield event

    async def retry(self, user_id: int, story_id: int, *, candidates: int | None = None) -> AsyncIterator[StoryEvent]:
        """New candidates in place of the last model passage (or of the candidates waiting)."""
        n = self._check_count(candidates)
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            head = tree.get(story.head_id) if story.head_id is not None else None
            if story.cursor.get("pending"):
                parent = story.cursor.get("pending_parent")
            elif head is not None and head.author in ("model", "edited"):
                parent = head.parent_id
            else:
                parent = story.head_id
            async for event in self._generate(user_id, story, tree, parent, n, None):
                yield event

    def _check_count(self, candidates: int | None) -> int | None:
        if candidates is None:
            return None
        if not isinstance(candidates, int) or isinstance(candidates, bool) or not 1 <= candidates <= 5:
            raise refusal("Ask for 1 to 5 candidates.", "Можно попросить от 1 до 5 вариантов.")
        return candidates

    async def _generate(self, user_id: int, story: StoryRecord, tree: dict[int, PassageRecord],
                        parent_id: int | None, n: int | None, user_passage: PassageRecord | None,
                        ) -> AsyncIterator[StoryEvent]:
        settings = self.settings_of(story)
        count = n or settings.candidates
        path = path_to(tree, parent_id)
        prompt = await self.generator.prompt(user_id, story, path, settings)
        made: list[PassageRecord] = []
        reports: list[tuple[int, CandidateReport]] = []
        errors: list[str] = []
        group: int | None = None
        for index in range(1, count + 1):
            outcome = None
            progress: dict[str, Any] = {}
            try:
                async for item in self.generator.candidate(story, path, prompt, settings, index, progress):
                    if isinstance(item, PassageDelta):
                        yield PassageDelta(item.candidate, item.text, count, item.reset)
                    else:
                        outcome = item
            except asyncio.CancelledError:
                # The user stopped the turn or it ran out of time: keep what was shown, incomplete.
                partial = progress.get("filter")
                if partial is not None:
                    partial.finish(complete=False)
                    if partial.text:
                        await self._store_candidate(user_id, story, parent_id, partial.text, "stopped",
                                                    [p.id for p in made], group)
                raise
            assert outcome is not None
            text, error = outcome
            passage = None
            if text:
                pending = [p.id for p in made]
                story, (passage,) = await self._store_candidate(
                    user_id, story, parent_id, text, error, pending, group
                )
                group = passage.candidate_group
                made.append(passage)
                if progress.get("report") is not None:
                    reports.append((passage.id, progress["report"]))
            if error or not text:
                errors.append(error or "The model wrote nothing usable.")
            yield CandidateDone(index, passage, error or (None if text else "The model wrote nothing usable."))
            if isinstance(error, str) and outcome_is_fatal(error):
                break
        auto = False
        if len(made) == 1 and count == 1:
            story = await self.repo.move_cursor(user_id, story.id, made[0].id, {}, chosen_id=made[0].id)
            auto = True
        tree = await self.repo.passages(user_id, story.id)
        view = build_view(story, tree, settings.model_dump())
        log.info("story generated story=%s candidates=%d errors=%d", story.id, len(made), len(errors))
        yield GenerationDone(view, user_passage, made, errors, auto, ranked(reports),
                             {cid: list(report.notes) for cid, report in reports})

    async def _store_candidate(self, user_id: int, story: StoryRecord, parent_id: int | None, text: str,
                               error: str | None, pending: list[int], group: int | None):
        status = "incomplete" if error else "complete"
        new = NewPassage("model", text, parent_id, status=status, candidate=True)
        # Shielded: stored even while the turn is being cancelled, so what was generated is never lost.
        return await asyncio.shield(self.repo.add_passages(
            user_id, story.id, [new], keep_head=True, candidate_group=group, append_pending=True,
            cursor={"pending": pending, "pending_parent": parent_id},
        ))

    async def choose(self, user_id: int, story_id: int, *, number: int | None = None,
                     passage_id: int | None = None) -> StoryView:
        async with self._locked(story_id):
            story = await self.repo.get_story(user_id, story_id)
            pending: list[int] = list(story.cursor.get("pending", []))
            if not pending:
                raise refusal("There are no candidates to choose from. Say /continue to get some.",
                               "Выбирать пока не из чего. Скажи /continue, и я предложу варианты.")
            if passage_id is not None:
                if passage_id not in pending:
                    raise refusal(f"Passage {passage_id} is not one of the candidates waiting.",
                                   f"Отрывка {passage_id} нет среди вариантов на выбор.")
                chosen = passage_id
            else:
                if not isinstance(number, int) or not 1 <= number <= len(pending):
                    raise refusal(f"There is no candidate {number}; choose 1 to {len(pending)}.",
                                   f"Варианта {number} нет; выбери от 1 до {len(pending)}.")
                chosen = pending[number - 1]
            await self.repo.move_cursor(user_id, story_id, chosen, {}, chosen_id=chosen)
        return await self.view(user_id, story_id)

    # --- moving around the tree ----------------------------------------------------

    async def undo(self, user_id: int, story_id: int) -> StoryView:
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            # Candidates waiting are set aside (they stay stored) along with the step back.
            if story.head_id is None or story.head_id not in tree:
                raise refusal("Nothing to undo: the story is at its beginning.",
                               "Отменять нечего: история в самом начале.")
            head = tree[story.head_id]
            redo = [*story.cursor.get("redo", []), head.id]
            await self.repo.move_cursor(user_id, story_id, head.parent_id, {"redo": redo})
        return await self.view(user_id, story_id)

    async def redo(self, user_id: int, story_id: int) -> StoryView:
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            redo = list(story.cursor.get("redo", []))
            if not redo or redo[-1] not in tree or tree[redo[-1]].parent_id != story.head_id:
                raise refusal("Nothing to redo.", "Возвращать нечего.")
            target = redo.pop()
            await self.repo.move_cursor(user_id, story_id, target, {"redo": redo})
        return await self.view(user_id, story_id)

    async def branch(self, user_id: int, story_id: int, *, number: int | None = None,
                     passage_id: int | None = None) -> StoryView:
        """Continue from an earlier passage (number on the current path, 0 = before the first,
        or any passage id); the passages after it stay stored, and /redo walks back to them."""
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            path = path_to(tree, story.head_id)
            if passage_id is not None:
                if passage_id not in tree:
                    raise refusal(f"This story has no passage {passage_id}.",
                                   f"В этой истории нет отрывка {passage_id}.")
                target: int | None = passage_id
            else:
                if not isinstance(number, int) or not 0 <= number <= len(path):
                    raise refusal(f"There is no passage {number}; the story has {len(path)}.",
                                   f"Отрывка {number} нет; всего отрывков в истории: {len(path)}.")
                target = path[number - 1].id if number else None
            ids = [p.id for p in path]
            redo = list(reversed(ids[ids.index(target) + 1:])) if target in ids else (
                list(reversed(ids)) if target is None else [])
            await self.repo.move_cursor(user_id, story_id, target, {"redo": redo})
        return await self.view(user_id, story_id)

    async def swipe(self, user_id: int, story_id: int, passage_id: int, direction: int) -> StoryView:
        """Put the previous (-1) or next (+1) sibling of a passage in its place: a passage of
        the current story or a candidate waiting. The story then follows the sibling's own
        branch (`continuation`), so nothing after the swiped passage is lost: swiping back
        brings it back. A candidate swiped to counts as chosen; candidates waiting elsewhere
        are set aside (they stay stored)."""
        if direction not in (-1, 1):
            raise refusal("Swipe by -1 (back) or 1 (forward).", "Листать можно на -1 (назад) или на 1 (вперёд).")
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            on_path = {p.id for p in path_to(tree, story.head_id)}
            if passage_id not in on_path and passage_id not in story.cursor.get("pending", []):
                raise refusal(f"Passage {passage_id} is not in the current story.",
                               f"Отрывка {passage_id} нет в текущей истории.")
            options = siblings(tree, tree[passage_id])
            index = [p.id for p in options].index(passage_id) + direction
            if not 0 <= index < len(options):
                raise refusal("There is no other version that way.", "В эту сторону других вариантов нет.")
            target = options[index]
            chosen = target.id if target.candidate_group is not None and target.chosen_at is None else None
            await self.repo.move_cursor(user_id, story_id, continuation(tree, target.id), {}, chosen_id=chosen)
        return await self.view(user_id, story_id)

    async def rate(self, user_id: int, story_id: int, passage_id: int, value: int) -> dict[str, Any]:
        """The writer's thumb on a passage: 1 up, -1 down, 0 takes it back."""
        if value not in (-1, 0, 1) or isinstance(value, bool):
            raise refusal("Rate a passage 1 (good), -1 (bad) or 0 (no rating).",
                           "Оценка отрывка: 1 (хорошо), -1 (плохо) или 0 (без оценки).")
        passage = await self.repo.rate_passage(user_id, story_id, passage_id, value or None)
        log.info("story passage rated story=%s passage=%s value=%s", story_id, passage_id, value)
        return passage_json(passage)

    async def context(self, user_id: int, story_id: int) -> dict[str, Any]:
        """What the model will be given for the next passage: the exact messages, each
        section's tokens, the budget, and each lore entry in or out with the reason."""
        story, tree = await self._state(user_id, story_id)
        settings = self.settings_of(story)
        path = path_to(tree, story.head_id)
        prompt, summarised, summary_pending = await self.generator.preview(user_id, story, path, settings)
        count = self.model.count_tokens
        budget = self.model.context_window - settings.max_new_tokens
        return {
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "sections": [{"name": name, "tokens": count(text), "text": text} for name, text in prompt.sections],
            "tokens": {"window": self.model.context_window, "answer": settings.max_new_tokens, "budget": budget,
                       "prompt": prompt.tokens},
            "passages": {"in_prompt": len(prompt.kept), "left_out": len(prompt.dropped),
                         "summarised": summarised},
            "lore": [{"id": d.entry.id, "keys": list(d.entry.keys), "text": d.entry.text, "enabled": d.entry.enabled,
                      "tokens": count(d.entry.text), "included": d.included, "reason": d.reason}
                     for d in prompt.lore],
            "summary_pending": summary_pending,
        }

    async def edit(self, user_id: int, story_id: int, text: str, *, number: int | None = None,
                   passage_id: int | None = None) -> StoryView:
        """A new version of a passage (the last one by default); the passages after it are
        copied onto the new branch, so the story reads on, and the old branch stays stored."""
        text = self.check_passage(text)
        async with self._locked(story_id):
            story, tree = await self._state(user_id, story_id)
            path = path_to(tree, story.head_id)
            if not path:
                raise refusal("There is no passage to edit yet.", "Править пока нечего: в истории нет отрывков.")
            if passage_id is not None:
                index = next((i for i, p in enumerate(path) if p.id == passage_id), None)
                if index is None:
                    raise refusal(f"Passage {passage_id} is not in the current story.",
                                   f"Отрывка {passage_id} нет в текущей истории.")
            elif number is None:
                index = len(path) - 1
            elif not isinstance(number, int) or not 1 <= number <= len(path):
                raise refusal(f"There is no passage {number}; the story has {len(path)}.",
                               f"Отрывка {number} нет; всего отрывков в истории: {len(path)}.")
            else:
                index = number - 1
            original = path[index]
            if text == original.text:
                raise refusal("That is the same text as before; nothing changed.",
                               "Текст тот же, что и был; ничего не изменилось.")
            author = "user" if original.author == "user" else "edited"
            new = [NewPassage(author, text, original.parent_id, source_id=original.id)]
            for offset, later in enumerate(path[index + 1:]):
                new.append(NewPassage(later.author, later.text, parent_index=offset, status=later.status,
                                      source_id=later.id))
            await self.repo.add_passages(user_id, story_id, new, cursor={})
        return await self.view(user_id, story_id)

    # --- side requests -------------------------------------------------------------

    async def character(self, user_id: int, story_id: int, name: str, question: str,
                        history: Sequence[tuple[str, str]] = ()) -> AsyncIterator[str]:
        """A character of the story answers `question` in their own voice; nothing is stored."""
        name = " ".join((name or "").split())
        if not name or len(name) > 60:
            raise refusal("Name the character (up to 60 characters), e.g. /character Mira: where were you?",
                           "Назови персонажа (до 60 символов), например /character Мира: где ты была?")
        if not isinstance(question, str) or not question.strip():
            raise refusal(f"What would you like to ask {name}?", f"О чём спросить персонажа {name}?")
        if len(question) > 1000:
            raise refusal("That question is too long (the limit is 1000 characters).",
                           "Вопрос слишком длинный (можно не больше 1000 символов).")
        story, tree = await self._state(user_id, story_id)
        async for piece in self.generator.character(user_id, story, path_to(tree, story.head_id),
                                                    self.settings_of(story), name, question.strip(), history):
            yield piece



    # --- export and import -----------------------------------------------------------

    async def export(self, user_id: int, story_id: int, fmt: str) -> tuple[str, str, str]:
        """(file name, content type, content) of the story in `fmt`: md, txt or json."""
        fmt = (fmt or "").lower().lstrip(".")
        if fmt not in FORMATS:
            raise refusal("Export as md, txt or json, e.g. /export md.",
                           "Экспорт бывает в md, txt или json, например /export md.")
        story, tree = await self._state(user_id, story_id)
        view = build_view(story, tree, self.settings_of(story).model_dump())
        if fmt == "md":
            content = export_markdown(view)
        elif fmt == "txt":
            content = export_text(view)
        else:
            lore = await self.repo.lore(user_id, story_id)
            content = export_json(view, tree, lore, await self.repo.summaries(user_id, story_id))
        return f"{_file_stem(story.title)}.{fmt}", FORMATS[fmt], content

    async def import_(self, user_id: int, data: str | dict[str, Any]) -> StoryView:
        """A new story of this user from a JSON export; nothing is stored when the export is invalid."""
        imported = parse_import(data)
        self.check_details(**{key: imported.meta.get(key) for key in DETAIL_LIMITS})
        settings = imported.meta.get("settings") or {}
        try:
            checked = StorySettings.load(dict(settings), self.defaults)
        except ValidationError:
            checked = self.defaults  # an export from a newer or older version: fall back to defaults
        meta = {**imported.meta, "settings": checked.model_dump()}
        story = await self.repo.import_story(user_id, replace(imported, meta=meta))
        log.info("story imported story=%s user=%s passages=%d", story.id, user_id, len(imported.passages))
        return await self.view(user_id, story.id)

    async def tree(self, user_id: int, story_id: int) -> list[dict[str, Any]]:
        """Every passage of the story, for a channel that draws the branches."""
        story, tree = await self._state(user_id, story_id)
        on_path = {p.id: n for n, p in enumerate(path_to(tree, story.head_id), 1)}
        swipes = swipe_positions(tree)
        return [passage_json(p, on_path.get(p.id), swipes[p.id]) for p in sorted(tree.values(), key=lambda p: p.id)]


def _file_stem(title: str) -> str:
    stem = re.sub(r"[^\w-]+", "-", title.lower(), flags=re.UNICODE).strip("-")
    return stem[:60] or "story"


def outcome_is_fatal(error: str) -> bool:
    """After a timeout or a missing model, further candidates would fail the same way."""
    return error.startswith(("timeout", "unavailable"))
