"""StorySkill: co-writing a story in chat, passage by passage; holds the conversation while a story is open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from bot.core.errors import InputError, ModelUnavailable, NotFound
from bot.core.skill import Skill, SkillConfig, Turn
from bot.models.base import LanguageModel
from bot.story.service import StoryService
from bot.story.settings import StorySettings, parse_assignments
from bot.story.tree import CandidateDone, GenerationDone, PassageDelta
from bot.storage.stories import StoryRepo
from skills import story_text as say
from skills.story_commands import HELP, Command, is_yes, parse, split_named

log = logging.getLogger(__name__)


class StoryConfig(SkillConfig):
    """`[skills.story]`: defaults of new stories (each story can change them) and limits."""

    candidates: int = Field(3, ge=1, le=5)
    max_new_tokens: int = Field(120, ge=16, le=1024)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, ge=1, le=2)
    # Longest passage a user may write, in characters.
    max_passage_chars: int = Field(4000, ge=100)
    # Length of a rolling summary of passages that no longer fit the context window, in tokens.
    summary_tokens: int = Field(150, ge=32, le=512)

    def story_defaults(self) -> StorySettings:
        return StorySettings(candidates=self.candidates, max_new_tokens=self.max_new_tokens,
                             temperature=self.temperature, top_p=self.top_p,
                             repetition_penalty=self.repetition_penalty)


class StorySkill(Skill):
    name = "story"
    intents = ("story",)
    description = "Writes a story together with the user, passage by passage."
    config_model = StoryConfig
    # Several candidates of a few sentences each: far slower than any other turn.
    time_budget_s = 300.0

    def __init__(self, config: StoryConfig | None = None, *, repo: StoryRepo | None = None,
                 model: LanguageModel | None = None) -> None:
        super().__init__(config)
        self.service: StoryService | None = None
        if repo is not None and model is not None:
            self.service = StoryService(repo, model, defaults=self.config.story_defaults(),
                                        max_passage_chars=self.config.max_passage_chars,
                                        summary_tokens=self.config.summary_tokens)

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        if self.service is None:
            yield turn.say(say.UNAVAILABLE)
            return
        turn.keep()
        try:
            async for piece in self._respond(turn, self.service):
                yield piece
        except InputError as exc:
            yield str(exc)
        except NotFound:
            turn.state.pop("story_id", None)
            yield "That story does not exist (or is not yours). /stories lists yours."
        except ModelUnavailable:
            yield turn.say(say.UNAVAILABLE)

    async def _respond(self, turn: Turn, service: StoryService) -> AsyncIterator[str]:
        state = turn.state
        story_id: int | None = state.get("story_id")
        if "confirm_delete" in state:
            yield await self._confirm_delete(turn, service, state.pop("confirm_delete"))
            return
        # The last reply, not the last message: a turn whose reply could not be stored (the
        # database was down) leaves the user's message last, and must not end the story mode.
        last_reply = next((item for item in reversed(turn.history) if item.author == "bot"), None)
        held = last_reply is not None and last_reply.skill == self.name
        if not state.get("active") or not held:
            # Entering the skill (graph hand-over, "let's write a story", /story): a fresh start,
            # with the story left open last time offered for resuming.
            last = state.pop("story_id", None)
            state.clear()
            state.update(active=True, draft={})
            turn.suggest("continue", "/stories", "/help")
            yield turn.say(say.INTRO)
            if last is not None:
                yield f" (/resume {last} goes back to the story you were writing.)"
            return
        pending = False
        if story_id is not None:
            pending = bool((await service.repo.get_story(turn.user_id, story_id)).cursor.get("pending"))
        command = parse(turn.text, candidates_waiting=pending)
        handler = getattr(self, f"_do_{command.name}", None)
        if handler is None:
            yield turn.say(say.UNKNOWN).format(name=command.args)
            return
        async for piece in handler(turn, service, command):
            yield piece

    # --- starting, listing, leaving ----------------------------------------------------

    async def _story(self, turn: Turn, service: StoryService) -> int:
        """The open story, created from the draft (title, genre, ...) when there is none yet."""
        story_id = turn.state.get("story_id")
        if story_id is not None:
            return story_id
        draft = turn.state.get("draft") or {}
        view = await service.start(turn.user_id, language=turn.language, **draft)
        turn.state["story_id"] = view.story.id
        turn.state["draft"] = {}
        turn.data["story_started"] = view.story.id
        return view.story.id

    async def _do_passage(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        text = service.check_passage(command.args)
        story_id = await self._story(turn, service)
        async for piece in self._generation(turn, service.continue_(turn.user_id, story_id, text=text)):
            yield piece

    async def _do_continue(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        events = service.continue_(turn.user_id, story_id, candidates=command.number)
        async for piece in self._generation(turn, events):
            yield piece

    async def _do_retry(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = self._open(turn)
        async for piece in self._generation(turn, service.retry(turn.user_id, story_id, candidates=command.number)):
            yield piece

    async def _generation(self, turn: Turn, events) -> AsyncIterator[str]:
        """Stream candidates as they are written, then say how to go on; turn.data gets the result."""
        started: set[int] = set()
        async for event in events:
            if isinstance(event, PassageDelta):
                if event.candidate not in started:
                    started.add(event.candidate)
                    if event.total > 1:
                        yield ("\n\n" if len(started) > 1 else "") + f"[{event.candidate}] "
                yield event.text
            elif isinstance(event, CandidateDone) and event.error:
                reason = event.error.split(": ", 1)[-1]
                if event.passage is not None:
                    yield f" [cut short: {reason}; kept, marked incomplete]"
                elif event.candidate in started or len(started) > 0:
                    yield f"\n\n[{event.candidate}] (no passage: {reason})"
            elif isinstance(event, GenerationDone):
                turn.data["story"] = event.to_json()
                if not event.candidates:
                    reason = (event.errors[0] if event.errors else "no text").split(": ", 1)[-1]
                    yield ("\n\n" if started else "") + turn.say(say.FAILED).format(reason=reason)
                elif event.auto_chosen:
                    yield "\n\n" + turn.say(say.TAKEN)
                else:
                    count = len(event.candidates)
                    turn.suggest(*(str(i) for i in range(1, count + 1)), "/retry")
                    yield "\n\n" + turn.say(say.CHOOSE).format(range=say.choice_range(count))

    def _open(self, turn: Turn) -> int:
        story_id = turn.state.get("story_id")
        if story_id is None:
            raise InputError(turn.say(say.NO_STORY))
        return story_id

    async def _do_end(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = turn.state.get("story_id")
        title = (await service.repo.get_story(turn.user_id, story_id)).title if story_id else "—"
        turn.state.clear()
        turn.release()
        yield turn.say(say.ENDED).format(title=title)

    async def _do_new(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        turn.state.pop("story_id", None)
        turn.state["draft"] = {"title": service.check_title(command.args)} if command.args else {}
        yield turn.say(say.INTRO)

    async def _do_stories(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        stories = await service.list_stories(turn.user_id)
        turn.data["stories"] = stories
        yield say.render_list(stories, turn.state.get("story_id"))

    async def _do_resume(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        if command.number is None:
            raise InputError("Which story? /resume ID (the ids are in /stories).")
        try:
            view = await service.view(turn.user_id, command.number)
        except NotFound:
            # The open story stays open; only the one asked for is missing.
            raise InputError(f"Story {command.number} does not exist (or is not yours). /stories lists yours.") from None
        turn.state["story_id"] = view.story.id
        turn.data["story"] = {"story": view.to_json()}
        yield say.render_view(view)

    async def _do_show(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.view(turn.user_id, self._open(turn))
        turn.data["story"] = {"story": view.to_json()}
        yield say.render_view(view, last=command.number or say.SHOW_LAST)

    async def _do_help(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield HELP

    async def _do_delete(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = command.number if command.number is not None else self._open(turn)
        story = await service.repo.get_story(turn.user_id, story_id)
        turn.state["confirm_delete"] = story_id
        turn.suggest("yes", "no")
        yield turn.say(say.CONFIRM_DELETE).format(title=story.title)

    async def _confirm_delete(self, turn: Turn, service: StoryService, story_id: int) -> str:
        story = await service.repo.get_story(turn.user_id, story_id)
        if not (is_yes(turn.text) or turn.intent == "affirm"):
            return turn.say(say.KEPT).format(title=story.title)
        await service.delete(turn.user_id, story_id)
        if turn.state.get("story_id") == story_id:
            turn.state.pop("story_id")
        return turn.say(say.DELETED).format(title=story.title)

    # --- the story's text and settings ---------------------------------------------------

    async def _do_choose(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        if command.number is None:
            raise InputError("Which one? /choose 1, or just type its number.")
        view = await service.choose(turn.user_id, self._open(turn), number=command.number)
        turn.data["story"] = {"story": view.to_json()}
        yield f"Taken: {say.render_passage(len(view.path), view.path[-1])}\nWrite what happens next, or say \"continue\"."

    async def _do_undo(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.undo(turn.user_id, self._open(turn))
        turn.data["story"] = {"story": view.to_json()}
        yield "Undone (/redo brings it back).\n" + say.render_view(view, last=2)

    async def _do_redo(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.redo(turn.user_id, self._open(turn))
        turn.data["story"] = {"story": view.to_json()}
        yield "Redone.\n" + say.render_view(view, last=2)

    async def _do_edit(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = self._open(turn)
        # "/edit 2 text" edits passage 2; "/edit text" the last one; "/edit 1984 was..." is ambiguous,
        # so a number is taken as a passage number only when such a passage exists.
        view = await service.view(turn.user_id, story_id)
        number, text = command.number, command.rest
        if number is None or not 1 <= number <= len(view.path):
            number, text = None, command.args
        view = await service.edit(turn.user_id, story_id, text, number=number)
        turn.data["story"] = {"story": view.to_json()}
        yield "Edited; the old version is kept.\n" + say.render_view(view, last=3)

    async def _do_branch(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        if command.number is None:
            raise InputError("From which passage? /branch N (the numbers are in /show).")
        view = await service.branch(turn.user_id, self._open(turn), number=command.number)
        turn.data["story"] = {"story": view.to_json()}
        yield (f"Branched after passage {command.number}; the old continuation is kept (/redo walks back to it). "
               "Write what happens now, or say \"continue\".\n" + say.render_view(view, last=2))

    async def _do_memory(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if not command.args:
            story = await service.repo.get_story(turn.user_id, story_id)
            yield f"Memory: {story.memory or '(empty)'}"
            return
        await service.set_memory(turn.user_id, story_id, command.args)
        yield "Memory saved; it stays at the top of what I read."

    async def _do_note(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if not command.args:
            story = await service.repo.get_story(turn.user_id, story_id)
            yield f"Author's note: {story.author_note or '(empty)'}"
            return
        await service.set_author_note(turn.user_id, story_id, command.args)
        yield "Author's note saved; it steers the next passages."

    async def _do_lore(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        args = command.args
        if args.startswith("-") and args[1:].strip().isdigit():
            await service.remove_lore(turn.user_id, story_id, int(args[1:]))
            yield "Lore entry removed."
            return
        if not args:
            entries = await service.lore(turn.user_id, story_id)
            yield "\n".join([f"  {e.id}: {', '.join(e.keys)}: {e.text}" for e in entries]) or "No lore entries yet."
            return
        named = split_named(args)
        if named is None:
            raise InputError("Write lore as /lore KEYWORDS: TEXT, e.g. /lore dragon, Smaug: an old red dragon.")
        entry = await service.set_lore(turn.user_id, story_id, named[0].split(","), named[1])
        yield f"Lore saved ({', '.join(entry.keys)}); I use it when those words come up."

    async def _do_settings(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if command.args:
            settings = await service.update_settings(turn.user_id, story_id, parse_assignments(command.args))
        else:
            settings = service.settings_of(await service.repo.get_story(turn.user_id, story_id))
        turn.data["story_settings"] = settings.model_dump()
        yield "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.model_dump().items())

    async def _do_export(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        name, content_type, content = await service.export(turn.user_id, self._open(turn), command.args or "md")
        turn.data["export"] = {"filename": name, "content_type": content_type, "content": content}
        yield content

    async def _do_import(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.import_(turn.user_id, command.args)
        turn.state["story_id"] = view.story.id
        yield "Imported.\n" + say.render_view(view)

    async def _meta(self, turn: Turn, service: StoryService, key: str, value: str) -> str:
        if turn.state.get("story_id") is None:
            turn.state.setdefault("draft", {})[key] = value
            return turn.say(say.NOTED).format(what=f"{key} “{value}”")
        story_id = turn.state["story_id"]
        if key == "title":
            await service.rename(turn.user_id, story_id, value)
        else:
            await service.repo.update_story(turn.user_id, story_id, **{key: value[:2000]})
        return f"The {key} is now “{value}”."

    async def _do_rename(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield await self._meta(turn, service, "title", service.check_title(command.args))

    async def _do_genre(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield await self._meta(turn, service, "genre", _required(command.args, "genre")[:100])

    async def _do_premise(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield await self._meta(turn, service, "premise", _required(command.args, "premise"))

    async def _do_style(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield await self._meta(turn, service, "style", _required(command.args, "style")[:200])

    async def _do_character(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        named = split_named(command.args)
        if named is None:
            raise InputError("Ask like this: /character Mira: where did you hide the key?")
        name, question = named
        talks: dict[str, Any] = turn.state.setdefault("characters", {})
        history = [tuple(pair) for pair in talks.get(name, [])]
        answer = []
        yield f"{name}: "
        async for piece in service.character(turn.user_id, self._open(turn), name, question, history):
            answer.append(piece)
            yield piece
        talks[name] = (history + [(question, "".join(answer))])[-3:]
        turn.data["character"] = {"name": name, "answer": "".join(answer)}


def _required(value: str, what: str) -> str:
    if not value.strip():
        raise InputError(f"Give the {what} after the command, e.g. /{what} ...")
    return value.strip()
