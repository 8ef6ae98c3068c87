"""StorySkill: co-writing a story in chat, passage by passage; holds the conversation while a story is open."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field

from bot.core.errors import InputError, ModelUnavailable, NotFound
from bot.core.skill import Skill, SkillConfig, Turn
from bot.models.base import LanguageModel
from bot.story.service import StoryService
from bot.story.settings import StorySettings, parse_assignments
from bot.story.tree import CandidateDone, GenerationDone, PassageDelta, StoryView
from bot.storage.stories import StoryRepo
from skills import story_text as say
from skills.story_commands import HELP, OUTSIDE_A_STORY, Command, is_yes, parse, split_named

log = logging.getLogger(__name__)

# A story button's turn carries {"action", "story_id", "head_id", "last_candidate_id", "number"} under
# this metadata key: what it does, and the moment of the story it was shown for (see `_button`).
BUTTON = "story_button"
BUTTON_ACTIONS = frozenset({"choose", "continue", "retry", "undo", "redo", "open"})


class StoryConfig(SkillConfig):
    """`[skills.story]`: defaults of new stories (each story can change them) and limits."""

    candidates: int = Field(3, ge=1, le=5)
    max_new_tokens: int = Field(120, ge=16, le=1024)
    # Most sentences in a passage: the model stops at the sentence limit or the token budget.
    sentences: int = Field(5, ge=1, le=20)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, ge=1, le=2)
    # Longest passage a user may write, in characters.
    max_passage_chars: int = Field(4000, ge=100)
    # Length of a rolling summary of passages that no longer fit the context window, in tokens.
    summary_tokens: int = Field(150, ge=32, le=512)

    def story_defaults(self) -> StorySettings:
        return StorySettings(candidates=self.candidates, max_new_tokens=self.max_new_tokens,
                             sentences=self.sentences, temperature=self.temperature, top_p=self.top_p,
                             repetition_penalty=self.repetition_penalty)


class StorySkill(Skill):
    name = "story"
    intents = ("story",)
    description = "Writes a story together with the user, passage by passage."
    config_model = StoryConfig
    # Several candidates of a few sentences each: far slower than any other turn.
    time_budget_s = 300.0
    # "how are you?" in the middle of a story is asked about before it becomes a passage.
    aside_check = say.ASIDE_CHECK

    def __init__(self, config: StoryConfig | None = None, *, repo: StoryRepo | None = None,
                 model: LanguageModel | None = None) -> None:
        super().__init__(config)
        self.service: StoryService | None = None
        if repo is not None and model is not None:
            self.service = StoryService(repo, model, defaults=self.config.story_defaults(),
                                        max_passage_chars=self.config.max_passage_chars,
                                        summary_tokens=self.config.summary_tokens)

    def is_command(self, text: str) -> bool:
        return parse(text).name != "passage"

    async def respond(self, turn: Turn) -> AsyncIterator[str]:
        if self.service is None:
            yield turn.say(say.UNAVAILABLE)
            return
        turn.keep()
        try:
            async for piece in self._respond(turn, self.service):
                yield piece
        except InputError as exc:
            yield exc.in_language(turn.language)
        except NotFound:
            turn.state.pop("story_id", None)
            yield turn.say(say.GONE)
        except ModelUnavailable:
            yield turn.say(say.UNAVAILABLE)

    async def _respond(self, turn: Turn, service: StoryService) -> AsyncIterator[str]:
        state = turn.state
        story_id: int | None = state.get("story_id")
        # Held: the story mode goes on, also after an aside another skill answered (help, "Leave it").
        held = turn.was_holding
        button = turn.metadata.get(BUTTON)
        if isinstance(button, Mapping):
            async for piece in self._button(turn, service, button, in_story=bool(state.get("active")) and held):
                yield piece
            return
        if "confirm_delete" in state:
            yield await self._confirm_delete(turn, service, state.pop("confirm_delete"))
            if not state.get("active"):
                turn.release()  # asked with no story open: the answer is the end of it
            return
        if not state.get("active") or not held:
            command = parse(turn.text)
            if command.name in OUTSIDE_A_STORY:
                # "/stories", "my stories", "/resume 3", "/export", "/delete 2" with no story open
                # list, open, export or delete one; none of them starts a new story.
                state["active"] = False
                turn.release()
                async for piece in self._outside(turn, service, command):
                    yield piece
                return
            # Entering the skill (graph hand-over, "let's write a story", /story): a fresh start,
            # with the story left open last time offered for resuming.
            last = state.pop("story_id", None)
            state.clear()
            state.update(active=True, draft={})
            turn.suggest("continue", "/stories", "/help")
            yield turn.say(say.INTRO)
            if last is not None:
                yield " " + turn.say(say.RESUME_HINT).format(id=last)
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
        events = service.retry(turn.user_id, story_id, candidates=command.number)
        async for piece in self._generation(turn, events, intro=turn.say(say.RETRIED) + "\n\n"):
            yield piece

    async def _generation(self, turn: Turn, events, intro: str = "") -> AsyncIterator[str]:
        """Stream candidates as they are written, then say how to go on; turn.data gets the result.

        What streamed of a candidate can differ from what was stored (it was written again, or its
        unfinished last sentence was cut): the reply is then rewritten with the stored texts."""
        started: set[int] = set()
        # The reply as (candidate or None, text) pieces, so a candidate's part can be replaced.
        composed: list[tuple[int | None, str]] = []
        differs = False

        def say_(text: str, candidate: int | None = None) -> str:
            composed.append((candidate, text))
            return text

        if intro:
            yield say_(intro)
        async for event in events:
            if isinstance(event, PassageDelta):
                if event.reset:
                    composed[:] = [(c, t) for c, t in composed if c != event.candidate]
                    differs = True
                if event.candidate not in started:
                    started.add(event.candidate)
                    if event.total > 1:
                        yield say_(("\n\n" if len(started) > 1 else "") + f"[{event.candidate}] ")
                if event.text:
                    yield say_(event.text, event.candidate)
            elif isinstance(event, CandidateDone):
                if event.passage is not None:
                    streamed = "".join(t for c, t in composed if c == event.candidate)
                    if streamed.strip() != event.passage.text:
                        at = next((i for i, (c, _) in enumerate(composed) if c == event.candidate), len(composed))
                        composed[:] = [(c, t) for c, t in composed if c != event.candidate]
                        composed.insert(at, (event.candidate, event.passage.text))
                        differs = True
                if event.error:
                    reason = say.reason(event.error, turn.language)
                    if event.passage is not None:
                        yield say_(turn.say(say.CUT_SHORT).format(reason=reason))
                    elif event.candidate in started or len(started) > 0:
                        yield say_(f"\n\n[{event.candidate}] " + turn.say(say.NO_PASSAGE).format(reason=reason))
            elif isinstance(event, GenerationDone):
                turn.data["story"] = event.to_json()
                if not event.candidates:
                    reason = say.reason(event.errors[0] if event.errors else "no text", turn.language)
                    yield say_(("\n\n" if started else "") + turn.say(say.FAILED).format(reason=reason))
                elif event.auto_chosen:
                    yield say_("\n\n" + turn.say(say.TAKEN))
                else:
                    count = len(event.candidates)
                    turn.suggest(*(str(i) for i in range(1, count + 1)), "/retry")
                    yield say_("\n\n" + turn.say(say.CHOOSE).format(range=say.choice_range(count)))
        if differs:
            turn.rewrite("".join(text for _, text in composed))

    def _open(self, turn: Turn) -> int:
        story_id = turn.state.get("story_id")
        if story_id is None:
            raise say.refusal_of(say.NO_STORY)
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
        yield say.render_list(stories, turn.state.get("story_id"), turn.language, empty=say.NO_STORIES_YET)

    async def _do_resume(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        if command.number is None:
            stories = await service.list_stories(turn.user_id)
            turn.data["stories"] = stories
            yield self._which(turn, stories, "resume", empty=say.NO_STORIES_YET)
            return
        view = await self._view_of(turn, service, command.number)
        if turn.state.get("story_id") != view.story.id:
            turn.state.clear()  # what the last story left (its characters' talk) is not this one's
        # The story open until now stays stored; the draft of one not yet started is dropped.
        turn.state.update(active=True, draft={}, story_id=view.story.id)
        turn.keep()
        turn.data["story"] = {"story": view.to_json()}
        yield say.render_view(view, language=turn.language)

    @staticmethod
    async def _view_of(turn: Turn, service: StoryService, story_id: int) -> StoryView:
        try:
            return await service.view(turn.user_id, story_id)
        except NotFound:
            # The open story stays open; only the one asked for is missing.
            raise say.refusal_of(say.NOT_YOURS, id=story_id) from None

    @staticmethod
    def _which(turn: Turn, stories: list[dict], command: str, *, empty: dict[str, str] = say.NO_STORIES) -> str:
        """The list of stories and how to name one for `command`, or `empty` when there are none."""
        if not stories:
            turn.suggest("/story")
            return turn.say(empty)
        turn.suggest(*(f"/{command} {item['id']}" for item in stories[:3]))
        return (say.render_list(stories, turn.state.get("story_id") if turn.state.get("active") else None,
                                turn.language, hint=False)
                + "\n" + turn.say(say.WHICH).format(command=command, example=stories[0]["id"]))

    async def _outside(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        """A story command with no story open. The conversation is not held, so the user's next
        message is routed afresh, except after /resume (the story is open again) and /delete ID
        (the yes-or-no answer comes back here)."""
        if command.name == "resume" and command.number is not None:
            async for piece in self._do_resume(turn, service, command):
                yield piece
            return
        stories = await service.list_stories(turn.user_id)
        if command.name in ("stories", "resume"):
            turn.data["stories"] = stories  # a channel may offer to open them (Telegram's buttons)
        if command.name == "stories":
            if stories:
                turn.suggest(*(f"/resume {item['id']}" for item in stories[:3]))
            else:
                turn.suggest("/story")
            yield say.render_list(stories, None, turn.language)
            return
        if not stories or (command.number is None and command.name != "export"):
            yield self._which(turn, stories, command.name)
            return
        if command.name == "delete":
            async for piece in self._do_delete(turn, service, command):
                yield piece
            return
        # /export [ID] [md|txt|json]: the story named, else the one last open, else the newest.
        ids = [item["id"] for item in stories]
        last = turn.state.get("story_id")
        story_id = command.number if command.number is not None else (last if last in ids else ids[0])
        view = await self._view_of(turn, service, story_id)
        fmt = command.rest or "md"
        name, content_type, content = await service.export(turn.user_id, story_id, fmt)
        turn.data["export"] = {"filename": name, "content_type": content_type, "content": content}
        yield turn.say(say.EXPORTED).format(title=view.story.title, id=story_id, format=fmt.lower().lstrip(".")) \
            + "\n\n" + content

    async def _button(self, turn: Turn, service: StoryService, button: Mapping[str, Any], *,
                      in_story: bool) -> AsyncIterator[str]:
        """A story button (Telegram). It acts on the story it was shown under, and only at the moment
        it was shown for (the same head passage and candidates waiting): a button of a story that has
        moved on since does nothing. The channel turns most such taps away itself; this catches two
        taps on two keyboards at once, whose turns run one after the other."""
        state = turn.state
        action, story_id, number = button.get("action"), button.get("story_id"), button.get("number")
        if action not in BUTTON_ACTIONS or not isinstance(story_id, int) or isinstance(story_id, bool):
            raise say.refusal_of(say.BUTTON_STALE)
        if not in_story:
            turn.release()  # unless the button opens the story (below), nothing is open after it
        try:
            view = await service.view(turn.user_id, story_id)
        except NotFound:
            yield turn.say(say.BUTTON_GONE)
            return
        open_id = state.get("story_id") if in_story else None
        if open_id is not None and open_id != story_id and action != "open":
            yield turn.say(say.BUTTON_OTHER_STORY).format(title=view.story.title, id=story_id)
            return
        if action != "open" and moment(view) != (button.get("head_id"), button.get("last_candidate_id")):
            yield turn.say(say.BUTTON_STALE)
            return
        state.pop("confirm_delete", None)  # a button is an answer of its own
        if open_id != story_id:
            state.clear()
            state.update(active=True, draft={}, story_id=story_id)
        turn.keep()
        if action == "open":
            command = Command("resume", str(story_id), story_id)
        else:
            command = Command(action, "", number if isinstance(number, int) and action == "choose" else None)
        async for piece in getattr(self, f"_do_{command.name}")(turn, service, command):
            yield piece

    async def _do_show(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.view(turn.user_id, self._open(turn))
        turn.data["story"] = {"story": view.to_json()}
        yield say.render_view(view, last=command.number or say.SHOW_LAST, language=turn.language)

    async def _do_help(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        yield turn.say(HELP)

    async def _do_delete(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = command.number if command.number is not None else self._open(turn)
        story = (await self._view_of(turn, service, story_id)).story
        turn.state["confirm_delete"] = story_id
        turn.keep()  # the yes-or-no answer comes back here
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
            raise say.refusal_of(say.WHICH_CANDIDATE)
        view = await service.choose(turn.user_id, self._open(turn), number=command.number)
        turn.data["story"] = {"story": view.to_json()}
        # Named as the candidate was offered ("✍ 2", "[2]"), not by its place in the story.
        yield (turn.say(say.CHOSEN).format(number=command.number) + "\n" + view.path[-1].text
               + "\n\n" + turn.say(say.WHAT_NEXT))

    async def _do_undo(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = self._open(turn)
        waiting = bool((await service.repo.get_story(turn.user_id, story_id)).cursor.get("pending"))
        view = await service.undo(turn.user_id, story_id)
        turn.data["story"] = {"story": view.to_json()}
        done = say.UNDONE_CANDIDATES if waiting else say.UNDONE
        shown = say.render_view(view, last=2, language=turn.language)
        yield turn.say(done).format(number=len(view.path) + 1) + "\n" + shown

    async def _do_redo(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.redo(turn.user_id, self._open(turn))
        turn.data["story"] = {"story": view.to_json()}
        shown = say.render_view(view, last=2, language=turn.language)
        yield turn.say(say.REDONE).format(number=len(view.path)) + "\n" + shown

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
        yield turn.say(say.EDITED) + "\n" + say.render_view(view, last=3, language=turn.language)

    async def _do_branch(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        if command.number is None:
            raise say.refusal_of(say.WHICH_PASSAGE)
        view = await service.branch(turn.user_id, self._open(turn), number=command.number)
        turn.data["story"] = {"story": view.to_json()}
        yield (turn.say(say.BRANCHED).format(number=command.number) + "\n"
               + say.render_view(view, last=2, language=turn.language))

    async def _do_memory(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if not command.args:
            story = await service.repo.get_story(turn.user_id, story_id)
            yield turn.say(say.MEMORY_IS).format(text=story.memory or turn.say(say.EMPTY_FIELD))
            return
        await service.set_memory(turn.user_id, story_id, command.args)
        yield turn.say(say.MEMORY_SAVED)

    async def _do_note(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if not command.args:
            story = await service.repo.get_story(turn.user_id, story_id)
            yield turn.say(say.NOTE_IS).format(text=story.author_note or turn.say(say.EMPTY_FIELD))
            return
        await service.set_author_note(turn.user_id, story_id, command.args)
        yield turn.say(say.NOTE_SAVED)

    async def _do_lore(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        args = command.args
        if args.startswith("-") and args[1:].strip().isdigit():
            await service.remove_lore(turn.user_id, story_id, int(args[1:]))
            yield turn.say(say.LORE_REMOVED)
            return
        if not args:
            entries = await service.lore(turn.user_id, story_id)
            yield "\n".join([f"  {e.id}: {', '.join(e.keys)}: {e.text}" for e in entries]) or turn.say(say.NO_LORE)
            return
        named = split_named(args)
        if named is None:
            raise say.refusal_of(say.LORE_FORMAT)
        entry = await service.set_lore(turn.user_id, story_id, named[0].split(","), named[1])
        yield turn.say(say.LORE_SAVED).format(keys=", ".join(entry.keys))

    async def _do_settings(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        story_id = await self._story(turn, service)
        if command.args:
            settings = await service.update_settings(turn.user_id, story_id, parse_assignments(command.args))
        else:
            settings = service.settings_of(await service.repo.get_story(turn.user_id, story_id))
        turn.data["story_settings"] = settings.model_dump()
        values = ", ".join(f"{k}={v}" for k, v in settings.model_dump().items())
        yield turn.say(say.SETTINGS_ARE).format(values=values)

    async def _do_export(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        # "/export md" the open story, "/export 3 txt" story 3.
        story_id = command.number if command.number is not None else self._open(turn)
        if command.number is not None:
            await self._view_of(turn, service, story_id)  # someone else's is NotYours, and the open one stays
        name, content_type, content = await service.export(turn.user_id, story_id, command.rest or "md")
        turn.data["export"] = {"filename": name, "content_type": content_type, "content": content}
        yield content

    async def _do_import(self, turn: Turn, service: StoryService, command: Command) -> AsyncIterator[str]:
        view = await service.import_(turn.user_id, command.args)
        turn.state["story_id"] = view.story.id
        yield turn.say(say.IMPORTED) + "\n" + say.render_view(view, language=turn.language)

    async def _meta(self, turn: Turn, service: StoryService, key: str, value: str) -> str:
        detail = say.pick(say.DETAILS, turn.language)[key]
        if turn.state.get("story_id") is None:
            turn.state.setdefault("draft", {})[key] = value
            return turn.say(say.NOTED).format(what=turn.say(say.DETAIL_VALUE).format(detail=detail, value=value))
        story_id = turn.state["story_id"]
        if key == "title":
            await service.rename(turn.user_id, story_id, value)
        else:
            await service.repo.update_story(turn.user_id, story_id, **{key: value[:2000]})
        return turn.say(say.DETAIL_SET).format(detail=detail, value=value)

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
            raise say.refusal_of(say.CHARACTER_FORMAT)
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
        raise say.refusal_of(say.DETAIL_MISSING, detail=what, command=what)
    return value.strip()


def moment(view: StoryView) -> tuple[int | None, int | None]:
    """Where a story stands, as its buttons remember it: the head passage and the last candidate waiting."""
    return view.story.head_id, (view.pending[-1].id if view.pending else None)
