"""PassageGenerator: the model calls of a story (prompt with rolling summary, candidates, character
answers), each streamed through a PassageFilter and kept when the model fails half-way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from bot.core.errors import ModelCrashed, ModelError, ModelTimeout, ModelUnavailable
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.story.polish import PassageFilter, ends_sentence
from bot.story.quality import judge
from bot.story.prompt import LANGUAGE_NAMES, StoryContextBuilder, StoryPrompt
from bot.story.settings import STOP_STRINGS, StorySettings
from bot.story.tree import PassageDelta
from bot.storage.stories import PassageRecord, StoryRecord, StoryRepo

log = logging.getLogger(__name__)

# A candidate in the wrong language, with no usable sentence, or contradicting or copying the
# story, is written again, up to this many tries in all.
ATTEMPTS = 2
# How many of the newest passages (with the memory) a candidate's facts are checked against.
STORY_FACTS_PASSAGES = 30
CHARACTER_TOKENS = 80


def overrun(max_new_tokens: int) -> int:
    """Tokens the model may write past a passage's budget to end the sentence it is in."""
    return max(24, max_new_tokens // 2)


def describe_error(exc: BaseException) -> str:
    """A short reason, safe to show to the user; the prefix tells whether retrying now can help.

    The exception's own text (a backend URL, a server's answer) goes to the log (the caller
    logs it), not to the user."""
    if isinstance(exc, ModelTimeout | TimeoutError):
        return "timeout: the model took too long"
    if isinstance(exc, ModelCrashed):
        return "unavailable: the language model stopped while writing and is restarting, so try again in a moment"
    if isinstance(exc, ModelUnavailable):
        return "unavailable: the language model cannot be reached right now"
    return "error: the language model failed while writing"


class PassageGenerator:
    """Talks to the language model for the story service; stores only summaries itself."""

    def __init__(self, repo: StoryRepo, model: LanguageModel, *, summary_tokens: int = 150) -> None:
        self.repo = repo
        self.model = model
        self.summary_tokens = summary_tokens
        self._started = False
        self._start_lock = asyncio.Lock()

    async def ready(self) -> StoryContextBuilder:
        """Start the model on first use (loading takes seconds) and give a builder for its window."""
        if not self._started:
            async with self._start_lock:
                if not self._started:
                    await self.model.start()
                    self._started = True
        return StoryContextBuilder(self.model.count_tokens, self.model.context_window)

    # --- the prompt and its rolling summary ----------------------------------------

    async def prompt(self, user_id: int, story: StoryRecord, path: Sequence[PassageRecord],
                     settings: StorySettings) -> StoryPrompt:
        """The prompt for the passage after `path`. When older passages no longer fit, they are
        summarised by the model (with the summary before them) and the summary is stored, so
        the next turns reuse it; half of the passages that fit are kept out of the new summary,
        so a new one is needed only every few turns."""
        builder, lore, best, prompt = await self._stored_prompt(user_id, story, path, settings)
        covered = best.covered if best else 0
        if len(prompt.dropped) <= covered:
            return prompt
        cut = len(path) - max(1, len(prompt.kept) // 2)
        try:
            text = await self.summarise(story, best.text if best else "", path[covered:cut], builder)
        except ModelError as exc:
            # Without a summary the prompt still fits; the story just forgets more for a turn.
            log.warning("summary failed story=%s: %s", story.id, exc)
            return prompt
        if not text:
            return prompt
        await self.repo.add_summary(user_id, story.id, path[cut - 1].id, cut, text)
        log.info("story summarised story=%s through=%s covered=%d", story.id, path[cut - 1].id, cut)
        return builder.build(story, path, lore, max_new_tokens=settings.max_new_tokens, summary=text,
                             summary_covers=cut, sentences=settings.sentences)

    async def preview(self, user_id: int, story: StoryRecord, path: Sequence[PassageRecord],
                      settings: StorySettings) -> tuple[StoryPrompt, int, bool]:
        """The prompt of the next passage as it stands, without asking the model for anything;
        how many of the passages it leaves out its summary covers; and whether a new summary will
        be made first (older passages no longer fit)."""
        _, _, best, prompt = await self._stored_prompt(user_id, story, path, settings)
        covered = best.covered if best and prompt.summary_used else 0
        return prompt, min(covered, len(prompt.dropped)), len(prompt.dropped) > covered

    async def _stored_prompt(self, user_id: int, story: StoryRecord, path: Sequence[PassageRecord],
                             settings: StorySettings):
        """The builder, the lore, the longest stored summary of `path`, and the prompt built with it."""
        builder = await self.ready()
        lore = await self.repo.lore(user_id, story.id)
        stored = await self.repo.summaries(user_id, story.id)
        best = None
        for covered in range(len(path), 0, -1):
            summary = stored.get(path[covered - 1].id)
            if summary is not None and summary.covered == covered:
                best = summary
                break
        prompt = builder.build(story, path, lore, max_new_tokens=settings.max_new_tokens,
                               summary=best.text if best else "", summary_covers=best.covered if best else 0,
                               sentences=settings.sentences)
        return builder, lore, best, prompt

    async def summarise(self, story: StoryRecord, previous: str, passages: Sequence[PassageRecord],
                        builder: StoryContextBuilder) -> str:
        """`previous` summary rolled forward over `passages`, in pieces that fit the window."""
        language = LANGUAGE_NAMES.get(story.language, story.language)
        instruction = (f"Summarise the events of a story in {language}, in at most five sentences. "
                       "Keep the names, places and key facts. Write only the summary.")
        room = builder.budget(self.summary_tokens) - builder.count(instruction) - 32
        params = GenerationParams(max_new_tokens=self.summary_tokens, temperature=0.3, stop=STOP_STRINGS)
        summary = previous
        chunk: list[str] = []

        async def roll(summary: str, chunk: list[str]) -> str:
            earlier = builder.truncate(summary, room // 3, keep="end")
            body = builder.truncate("\n\n".join(chunk), room - builder.count(earlier) - 8, keep="end")
            user = (f"Earlier summary:\n{earlier}\n\n" if earlier else "") + f"What happened next:\n{body}"
            text = await self.model.generate([ChatMessage("system", instruction), ChatMessage("user", user)], params)
            return _whole_sentences(text) or summary

        for passage in passages:
            text = builder.truncate(passage.text, room // 2, keep="end")
            if chunk and builder.count("\n\n".join([*chunk, text])) + builder.count(summary) > room * 2 // 3:
                summary = await roll(summary, chunk)
                chunk = []
            chunk.append(text)
        if chunk:
            summary = await roll(summary, chunk)
        return summary.strip()

    # --- passages --------------------------------------------------------------------

    async def candidate(self, story: StoryRecord, path: Sequence[PassageRecord], prompt: StoryPrompt,
                        settings: StorySettings, index: int, progress: dict | None = None,
                        ) -> AsyncIterator[PassageDelta | tuple[str, str | None]]:
        """Stream one candidate as PassageDelta pieces, then yield (text, error) once.

        A model error or timeout mid-stream keeps the text so far (the caller stores it as
        incomplete). A candidate in the wrong language, with nothing usable, or one that
        contradicts or copies the story (`quality.judge`), is written once more; when some of
        it was shown already, a `reset` delta tells the channel to clear it first.
        `progress["filter"]` is the live filter, so a caller being cancelled can still store
        what was shown; `progress["report"]` is the finished candidate's quality report."""
        # The instructions too: a model talked into "printing its system prompt" repeats them verbatim.
        context = [p.text for p in path[-3:]] + [story.memory] + [m.content for m in prompt.messages
                                                                   if m.role == "system"]
        told = "\n".join([story.memory, *(p.text for p in path[-STORY_FACTS_PASSAGES:])])
        last = path[-1].text if path else ""
        # Room past the budget to end the sentence under way: the filter stops at the first
        # sentence end after `max_new_tokens`, the model only at the hard limit. The prompt left
        # room for `max_new_tokens` only, so the extra is what the window still holds (a remote
        # server refuses a request past its window; the local backends would cut it).
        room = max(settings.max_new_tokens, self.model.context_window - prompt.tokens)
        params = replace(settings.params(), max_new_tokens=min(
            settings.max_new_tokens + overrun(settings.max_new_tokens), room))
        text, error = "", None
        for attempt in range(1, ATTEMPTS + 1):
            filt = PassageFilter(context, story.language, max_sentences=settings.sentences,
                                 token_budget=settings.max_new_tokens, count_tokens=self.model.count_tokens)
            if progress is not None:
                progress["filter"] = filt
            error = None
            stream = self.model.stream(prompt.messages, params, cache_key=f"story:{story.id}")
            try:
                async for piece in stream:
                    out = filt.feed(piece)
                    if out:
                        yield PassageDelta(index, out)
                    if filt.done:
                        break
            except ModelError as exc:
                error = describe_error(exc)
                log.warning("story generation failed story=%s candidate=%d: %s", story.id, index, exc)
            finally:
                # Closing the stream stops the model at once (its thread checks for it).
                await _close(stream)
            tail = filt.finish(complete=error is None)
            if tail:
                yield PassageDelta(index, tail)
            text = filt.text
            report = judge(told, last, text, story.language, complete=error is None,
                           max_sentences=settings.sentences) if text else None
            if progress is not None:
                progress["report"] = report
            redo = error is None and (filt.wrong_language or not text or report.worth_redoing)
            if not redo or attempt == ATTEMPTS:
                break
            log.info("story candidate redone story=%s candidate=%d wrong_language=%s notes=%s", story.id, index,
                     filt.wrong_language, list(report.notes) if report else [])
            if filt.shown:
                yield PassageDelta(index, "", reset=True)
        if not text and error is None:
            language = LANGUAGE_NAMES.get(story.language, story.language)
            error = (f"error: the model could not write in {language}" if filt.wrong_language
                     else "error: the model wrote nothing usable")
        yield text, error

    async def character(self, user_id: int, story: StoryRecord, path: Sequence[PassageRecord],
                        settings: StorySettings, name: str, question: str,
                        history: Sequence[tuple[str, str]]) -> AsyncIterator[str]:
        """`name` answers in their own voice, with the story as context; nothing is stored."""
        builder = await self.ready()
        language = LANGUAGE_NAMES.get(story.language, story.language)
        instruction = (
            f"You are {name}, a character in the story \"{story.title}\". Answer in {name}'s own voice, "
            f"in the first person, in one to three sentences of {language}. Stay in character; do not "
            "narrate the story and do not write the other speaker's lines."
        )
        extra: list[ChatMessage] = []
        for asked, answered in list(history)[-3:]:
            extra += [ChatMessage("user", asked), ChatMessage("assistant", answered)]
        extra.append(ChatMessage("user", question))
        stored = await self.repo.summaries(user_id, story.id)
        best = next((stored[p.id] for p in reversed(path) if p.id in stored), None)
        prompt = builder.build(
            story, path, await self.repo.lore(user_id, story.id), max_new_tokens=CHARACTER_TOKENS,
            summary=best.text if best else "", summary_covers=best.covered if best else 0,
            instruction=instruction, extra=extra,
        )
        params = GenerationParams(max_new_tokens=CHARACTER_TOKENS, temperature=settings.temperature,
                                  top_p=settings.top_p, repetition_penalty=settings.repetition_penalty,
                                  stop=STOP_STRINGS)
        filt = PassageFilter((instruction,), story.language)  # never the instructions, word for word
        stream = self.model.stream(prompt.messages, params)
        try:
            async for piece in stream:
                out = filt.feed(_strip_speaker(piece, name) if not filt.text else piece)
                if out:
                    yield out
                if filt.done:
                    break
        except ModelError as exc:
            log.warning("character answer failed story=%s: %s", story.id, exc)
            tail = filt.finish(complete=False)
            if tail:
                yield tail
            yield " (…the answer was cut short)" if filt.text else "(no answer: the model failed, try again)"
            return
        finally:
            await _close(stream)
        tail = filt.finish()
        if tail:
            yield tail


def _strip_speaker(piece: str, name: str) -> str:
    stripped = piece.lstrip()
    if stripped.lower().startswith(name.lower() + ":"):
        return stripped[len(name) + 1:]
    return piece


def _whole_sentences(text: str) -> str:
    text = text.strip()
    if ends_sentence(text):
        return text
    end = max(text.rfind(mark) for mark in (". ", "! ", "? ", "… "))
    return text[: end + 1] if end != -1 else text


async def _close(stream) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
