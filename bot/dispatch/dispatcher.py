"""Dispatcher: annotate → graph node or skill → reply, one conversation's turns in order, all stored."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.annotations import Annotations, Annotator, IntentGuess
from bot.core.errors import InputError, NotFound, StorageError
from bot.core.messages import Incoming, Reply
from bot.core.skill import Skill, Turn
from bot.core.state import DialogState
from bot.core.text import clean_user_text
from bot.dispatch.admission import Admission, user_key
from bot.dispatch.asides import Aside, answer_to_check, aside_intent
from bot.dispatch.selector import Candidate, SelectorConfig, candidate_skills, pick
from bot.dispatch.registry import SkillRegistry
from bot.dispatch.relay import RelayPublisher, TurnRelay
from bot.dispatch.stream import TurnStream
from bot.settings import DispatcherConfig
from bot.storage.conversations import ConversationRepo, NewMessage, OpenedTurn, StoredReply
from bot.storage.leases import poll_until, start_renewing

log = logging.getLogger(__name__)

# Intents that free a conversation from a skill that holds it, whatever that skill is doing.
RELEASE_INTENTS = frozenset({"cancel", "reset"})
# Asked for in so many words inside a skill that holds the conversation (a story, a survey), these
# are answered by their own skill: help keeps the held skill, the others leave it.
META_INTENTS = frozenset({"help", "goodbye", "feedback"})
KEEPS_HELD = frozenset({"help"})
# Intents that answer the bot's last question rather than ask for something: they go back to a
# skill that follows up (small talk asked "do you like music?"; "yes" is for it, not the fallback).
ANSWER_INTENTS = frozenset({"affirm", "deny"})
# The dispatcher's own entry in DialogState.skill_state (no skill name starts with "_"): a pending aside.
ROUTING_STATE = "_routing"
FALLBACK_SKILL = "fallback"

APOLOGY = {
    "en": "Sorry, something went wrong on my side. Please try again in a moment.",
    "ru": "Извини, у меня что-то сломалось. Попробуй ещё раз чуть позже.",
}
TOO_SLOW = {
    "en": "Sorry, that took me too long. Could you try again?",
    "ru": "Извини, я слишком долго думал. Попробуешь ещё раз?",
}
STOPPED = {"en": "(stopped)", "ru": "(остановлено)"}
NOT_SAVED = {
    "en": "Sorry, I can't save messages right now, so I didn't take that one. Please try again in a moment.",
    "ru": "Извини, сейчас я не могу сохранять сообщения, так что это не принял. Попробуй чуть позже.",
}
BUSY = {
    "en": "I'm getting a lot of messages right now, so I didn't take that one. Please send it again in a few seconds.",
    "ru": "Мне сейчас пишут очень много, так что это сообщение я не принял. Отправь его ещё раз через несколько секунд.",
}
GONE = {
    "en": "That conversation does not exist.",
    "ru": "Такого разговора нет.",
}
CANNOT_SAVE = {
    "en": "Sorry, I can't save anything right now, so I couldn't finish that. Please try again in a moment.",
    "ru": "Извини, сейчас я не могу ничего сохранить, так что не смог это закончить. Попробуй чуть позже.",
}


class GraphStepLike(Protocol):
    flow: str
    node: str
    response: str | None
    suggestions: tuple[str, ...]
    set_slots: dict[str, Any]
    skill: str | None
    end: bool
    fallback: bool


class GraphEngineLike(Protocol):
    def step(self, state: DialogState, text: str, annotations: Annotations, language: str) -> GraphStepLike | None: ...


@dataclass
class _Route:
    """Where a turn goes: an optional graph step, then an optional skill."""

    step: GraphStepLike | None = None
    skill: Skill | None = None
    prefix: list[str] = field(default_factory=list)
    # An aside (help inside a story): the skill that held the conversation holds it afterwards.
    keep_held: bool = False
    # Said after the skill's reply (the way back to a held story after an aside).
    suffix: list[str] = field(default_factory=list)
    # The skill named as the answer's author when no skill runs (the held skill's check).
    answered_by: str | None = None
    # Several skills that may answer, with the intent each would answer (None: the fallback's).
    candidates: list[tuple[Skill, IntentGuess | None]] = field(default_factory=list)


class Dispatcher:
    """Runs turns. Each conversation has a FIFO lock, so its turns never interleave,
    while turns of different conversations run concurrently on the event loop."""

    def __init__(
        self,
        repo: ConversationRepo,
        skills: SkillRegistry,
        annotators: Sequence[Annotator] = (),
        graphs: GraphEngineLike | None = None,
        config: DispatcherConfig | None = None,
        intent_threshold: float = 0.5,
        relay: TurnRelay | None = None,
    ) -> None:
        self.repo = repo
        # Streams a turn's reply to another process answering a resend of it (None: one process,
        # or no Redis: such a resend gets the whole reply once it is stored).
        self.relay = relay
        self.skills = skills
        self.annotators = list(annotators)
        self.graphs = graphs
        self.config = config or DispatcherConfig()
        self.intent_threshold = intent_threshold
        self.selector = SelectorConfig(max_candidates=self.config.max_candidates,
                                       floor=self.config.candidate_floor, margin=self.config.candidate_margin)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._lock_users: dict[tuple[str, str], int] = {}
        self._running: set[asyncio.Task] = set()
        # Shared with the story API, so a story action and a chat turn count alike.
        self.admission = Admission(self.config.max_turns_in_flight, self.config.max_turns_in_flight_per_user)
        # Set when a turn of the conversation ends in this process, so the next one goes at once.
        self._turn_ended: dict[str, asyncio.Event] = {}
        self._lease_s = self.config.turn_lease_s

    def handle_turn(self, incoming: Incoming) -> TurnStream:
        """Start a turn and return its stream at once; the turn runs (and is stored) even if
        the caller stops listening."""
        stream = TurnStream()
        key = user_key(incoming.channel, incoming.user_id, incoming.owner_id)
        if not self.admission.try_enter(key):
            # Overload: refuse at once, before anything is stored or acknowledged, rather than
            # accept turns that would wait out the database pool's timeout and fail later.
            language = incoming.language if incoming.language in BUSY else "en"
            stream.finish(Reply(incoming.conversation_id or "", BUSY[language], "dispatcher", status="busy"))
            return stream
        task = asyncio.create_task(self._run(incoming, stream))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: self.admission.leave(key))
        task.add_done_callback(_log_task_death)
        return stream

    async def close(self, grace_s: float = 10.0) -> None:
        """Let the turns in flight finish (and be stored) before shut-down; cancel stragglers."""
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- the turn ------------------------------------------------------------

    async def _run(self, incoming: Incoming, stream: TurnStream) -> None:
        try:
            stream.finish(await self._turn(incoming, stream))
        except BaseException as exc:  # the stream must always end, or a channel would wait forever
            stream.fail(exc)
            raise

    async def _open(self, incoming: Incoming, text: str) -> OpenedTurn:
        """The turn's first transaction, under an in-process lock on how the conversation was
        addressed, so this process's turns take their tickets in the order they arrived."""
        key = ("id", incoming.conversation_id) if incoming.conversation_id else (incoming.channel, incoming.user_id)
        lock = self._lock_for(key)
        try:
            async with lock:
                return await self.repo.open_turn(
                    channel=incoming.channel, external_id=incoming.user_id, display_name=incoming.user_name,
                    conversation_id=incoming.conversation_id, owner_id=incoming.owner_id, text=text,
                    client_id=incoming.client_message_id, history_turns=self.config.history_turns,
                    lease_s=self._lease_s,
                )
        finally:
            self._release_lock(key)

    async def _wait_turn(self, conversation_id: str, message_id: int) -> None:
        """Wait until the earlier turns of the conversation are answered: at once when one of this
        process ends, by polling (with backoff) for those of other processes. A dead process's turn
        stops counting once its lease is over."""
        async def ready() -> bool:
            return not await self.repo.is_behind(conversation_id, message_id)

        await poll_until(ready, woken=lambda: self._turn_ended.setdefault(conversation_id, asyncio.Event()))

    async def _follow_first_copy(self, conversation_id: str, message_id: int, stream: TurnStream) -> None:
        """Wait for the turn of the message's first copy to end; with a relay, stream its text
        meanwhile (the first copy runs in another process: the widget reconnected elsewhere)."""
        ended = asyncio.ensure_future(self._wait_turn(conversation_id, message_id + 1))
        try:
            if self.relay is not None:
                shown = ""
                async for text in self.relay.follow(message_id, ended):
                    if len(text) > len(shown) and text.startswith(shown):
                        stream.push(text[len(shown):])
                        shown = text
            await ended
        finally:
            ended.cancel()

    def _announce_end(self, conversation_id: str) -> None:
        ended = self._turn_ended.pop(conversation_id, None)
        if ended is not None:
            ended.set()

    async def _turn(self, incoming: Incoming, stream: TurnStream) -> Reply:
        started = time.perf_counter()
        language = incoming.language or self.config.default_language
        conversation_id = incoming.conversation_id or ""
        try:
            text = clean_user_text(incoming.text, self.config.max_text_chars)
        except InputError as exc:
            # Refused input is answered before anything is looked up or stored: nothing
            # stored changes, not even a first-time user's row.
            return Reply(conversation_id, exc.in_language(language), "dispatcher", status="rejected")
        opened: OpenedTurn | None = None
        renewing: asyncio.Task | None = None
        publisher: RelayPublisher | None = None
        try:
            opened = await self._open(incoming, text)
            conversation_id = stream.conversation_id = opened.conversation_id
            stream.duplicate = opened.duplicate
            stream.stored(opened.user_message_id)
            if opened.duplicate:
                replayed = opened.replayed
                if replayed is None:  # the first copy is still being answered: its answer is this one's
                    await self._follow_first_copy(conversation_id, opened.user_message_id, stream)
                    replayed = await self.repo.stored_reply(opened.user_message_id)
                if replayed is not None:
                    opened.closed = True  # nothing of ours to answer
                    return _replay(conversation_id, opened.user_message_id, replayed)
                # The first copy's turn died with its process: answer it now, on its stored message.
                opened.behind = True
            # Renewed from the start: a ticket waiting its turn behind a long one must not lapse.
            message_id = opened.user_message_id
            renewing = start_renewing(lambda: self.repo.renew_ticket(message_id, self._lease_s), self._lease_s,
                                      f"turn ticket message={message_id}")
            if self.relay is not None:
                publisher = self.relay.publisher(message_id)
                stream.mirror = publisher.add
            if opened.behind:
                await self._wait_turn(conversation_id, opened.user_message_id)
                opened.state, opened.history = await self.repo.reload(
                    conversation_id, opened.user_message_id, self.config.history_turns)
            return await self._answer(incoming, stream, opened, text, started)
        except StorageError:
            log.exception("turn not stored conversation=%s channel=%s", conversation_id, incoming.channel)
            if opened is None:
                return Reply(conversation_id, NOT_SAVED.get(language, NOT_SAVED["en"]), "dispatcher",
                             status="fallback")
            return Reply(conversation_id, CANNOT_SAVE.get(language, CANNOT_SAVE["en"]), "dispatcher",
                         user_message_id=opened.user_message_id, status="fallback")
        except NotFound:
            return Reply(conversation_id, GONE.get(language, GONE["en"]), "dispatcher", status="rejected",
                         data={"error": "not_found"})
        finally:
            if publisher is not None:
                publisher.close()
            if opened is not None:
                await self._end_ticket(opened, renewing)

    async def _end_ticket(self, opened: OpenedTurn, renewing: asyncio.Task | None) -> None:
        """Stop renewing the turn's ticket; close it if the reply did not (cancelled at shut-down, the
        database failed), freeing the conversation's later turns now rather than when it lapses."""
        if renewing is not None:
            renewing.cancel()
        try:
            if not opened.closed:
                with contextlib.suppress(StorageError, NotFound):
                    await self.repo.close_ticket(opened.user_message_id)
        finally:
            self._announce_end(opened.conversation_id)

    async def _answer(self, incoming: Incoming, stream: TurnStream, opened: OpenedTurn, text: str,
                      started: float) -> Reply:
        conversation_id, state = opened.conversation_id, opened.state
        user_message_id = opened.user_message_id
        skill_name = "dispatcher"
        language = state.language or incoming.language or self.config.default_language
        annotations = await self._annotate(text, conversation_id)
        language = _pick_language(incoming, state, annotations, self.config.default_language)
        state.language = language
        state.turn_count += 1
        holder = self.skills.get(state.active_skill)
        if holder is None or holder.aside_check is None:
            # Inside a story "My name is Bob," is a character's line: facts count only as an aside.
            _remember_user_facts(annotations.values.get("user_facts"), state)
        turn = Turn(
            conversation_id=conversation_id, user_id=opened.user_id, channel=incoming.channel, text=text,
            language=language, annotations=annotations, slots=state.slots, metadata=incoming.metadata,
        )
        status = "complete"
        pieces: list[str] = []
        route = _Route()
        try:
            turn.history = opened.history
            addressed = self.skills.get(incoming.skill)
            route = _Route(skill=addressed) if addressed is not None else self._route(state, turn)
            skill_name = route.skill.name if route.skill else route.answered_by or "graph"
            for part in route.prefix:
                pieces.append(part)
                stream.push(part)
            held = state.active_skill
            if route.skill is not None:
                status = await self._run_skill(route.skill, turn, state, pieces, stream)
            elif route.candidates:
                skill_name, status = await self._run_candidates(route.candidates, turn, state, pieces, stream)
            for part in route.suffix if status == "complete" else ():
                pieces.append(part)
                stream.push(part)
            if (addressed is not None or route.keep_held) and state.active_skill is None:
                state.active_skill = held  # an aside (a language button, help) leaves a story open
        except Exception as exc:  # the one catch-all of a turn: log it, answer politely
            log.exception("turn failed conversation=%s skill=%s", conversation_id, skill_name)
            # A database that refuses writes is not "something broke": say that nothing was saved.
            answer = CANNOT_SAVE if isinstance(exc, StorageError) else APOLOGY
            pieces = [answer.get(language, answer["en"])]
            status = "fallback"
            if not isinstance(exc, StorageError):  # a broken skill lets go; a story stays open
                state.active_skill = None

        text_out = "".join(pieces).strip() or APOLOGY.get(language, APOLOGY["en"])
        latency_ms = int((time.perf_counter() - started) * 1000)
        guess = annotations.intent
        message = NewMessage(
            "bot", text_out, skill=skill_name, intent=guess.name if guess else None,
            confidence=guess.confidence if guess else None, annotations=annotations.to_json(),
            flow=route.step.flow if route.step else None, node=route.step.node if route.step else None,
            status=status, latency_ms=latency_ms,
        )
        try:
            message_id = await self.repo.finish_turn(conversation_id, message, state, reply_to=user_message_id)
            opened.closed = True
        except StorageError:
            log.exception("reply not stored conversation=%s skill=%s", conversation_id, skill_name)
            message_id = None
        except NotFound:
            # The user deleted their data while the answer was being made: nothing is left to add it to.
            log.info("reply dropped, conversation gone conversation=%s", conversation_id)
            return Reply(conversation_id, GONE.get(language, GONE["en"]), skill_name, status="rejected",
                         data={"error": "not_found"})
        log.info("turn conversation=%s skill=%s intent=%s status=%s latency_ms=%d",
                 conversation_id, skill_name, message.intent, status, latency_ms)
        suggestions = tuple(turn.suggestions) or (route.step.suggestions if route.step else ())
        return Reply(
            conversation_id, text_out, skill_name, message_id=message_id, user_message_id=user_message_id,
            suggestions=tuple(suggestions), intent=message.intent, confidence=message.confidence,
            status=status, data=turn.data, latency_ms=latency_ms,
        )

    # --- routing policy (the whole of it) ------------------------------------

    def _route(self, state: DialogState, turn: Turn) -> _Route:
        intent = turn.intent if self._confident(turn) else None
        # A question asked last turn ("Add that to the story?") is answered now or never.
        aside = Aside.from_json((state.skill_state.pop(ROUTING_STATE, None) or {}).get("aside"))
        # 1. A skill holding the conversation keeps it, unless the user cancels or resets in
        # so many words (a rule): inside a skill the user writes free text (a story passage,
        # a comment), which a classifier's guess of "cancel" must not cut short.
        guess = turn.annotations.intent
        by_rule = guess is not None and guess.source == "rules"
        if state.active_skill and intent in RELEASE_INTENTS and by_rule:
            state.active_skill = None
        held = self.skills.get(state.active_skill)
        if held is not None and intent in META_INTENTS and by_rule:
            meta = self.skills.by_intent(intent)
            if meta is not None and meta is not held:
                if intent not in KEEPS_HELD:
                    state.active_skill = None
                return _Route(skill=meta, keep_held=intent in KEEPS_HELD)
        if held is not None:
            return self._held_route(held, state, turn, aside)
        state.active_skill = None
        if intent == "reset":
            state.flow = state.node = None  # "cancel" stays: a graph may answer it (global transition)
        return self._free_route(state, turn, intent)

    def _free_route(self, state: DialogState, turn: Turn, intent: str | None) -> _Route:
        """Where a message goes when no skill holds the conversation."""
        # 2. The active dialog graph node, or a flow whose trigger matches.
        if self.graphs is not None:
            step = self.graphs.step(state, turn.text, turn.annotations, turn.language)
            if step is None and state.flow is not None:
                # The active flow let go of the message: another flow's trigger may still claim it.
                state.flow = state.node = None
                step = self.graphs.step(state, turn.text, turn.annotations, turn.language)
            if step is not None and step.fallback:
                # The graph has no answer for it: a skill that claims the message takes it, and
                # the flow lets go (its fallback node is for what nothing else understands).
                claimant = self.skills.by_intent(intent)
                if claimant is not None:
                    state.flow = state.node = None
                    return _Route(skill=claimant)
            if step is not None:
                return self._apply_step(step, state, turn)
        # 3. An answer to the last reply: what nothing is sure of (or a bare yes/no) goes back to the
        # skill that wrote it when that skill follows up (small talk asked "and you?").
        follower = self._follow_up(turn, intent)
        if follower is not None:
            return _Route(skill=follower)
        # 4. The skill of a sure intent; when none is sure, or two are close, the few skills the
        # ranking names answer side by side and the selector keeps the best reply; 5. the fallback.
        options = candidate_skills(turn.annotations.intent, turn.annotations.ranking, self.skills.by_intent,
                                   self.skills[FALLBACK_SKILL], self.intent_threshold, self.selector)
        if len(options) > 1:
            return _Route(candidates=options)
        return _Route(skill=options[0][0] if options else self.skills[FALLBACK_SKILL])

    def _follow_up(self, turn: Turn, intent: str | None) -> Skill | None:
        if intent is not None and intent not in ANSWER_INTENTS:
            return None
        if turn.annotations.values.get("chat_act") in ("task", "lookup"):
            return None  # "book me a flight" after small talk is still out of scope
        last = next((item for item in reversed(turn.history) if item.author == "bot"), None)
        skill = self.skills.get(last.skill) if last is not None else None
        if skill is None or not skill.follows_up:
            return None
        if intent is None and not _has_words(turn.text):
            return None  # noise ("asdf", "???") is not an answer
        return skill

    def _held_route(self, held: Skill, state: DialogState, turn: Turn, aside: Aside | None) -> _Route:
        """A skill that takes free text (a story) takes the message, unless it looks meant for the bot:
        then the user is asked, and their answer adds it to the skill or has it answered as an aside."""
        check = held.aside_check
        if check is None:
            return _Route(skill=held)
        if aside is not None and aside.skill == held.name:
            choice = answer_to_check(turn.text)
            if choice == "add":
                turn.text = aside.text
                return _Route(skill=held)
            if choice == "leave":
                # Answered as if no skill held the conversation; the held one holds it again after.
                _remember_user_facts(aside.facts, state)
                turn.text = aside.text
                values = {"aside": True, **({"user_facts": aside.facts} if aside.facts else {})}
                turn.annotations = Annotations(language=turn.annotations.language, intent=aside.guess(),
                                               ranking=[aside.guess()], values=values)
                route = self._free_route(state, turn, aside.intent)
                route.keep_held = True
                route.suffix.append(" " + turn.say(check.back))
                return route
            # Anything else: the question is dropped and this message is judged as it comes.
        guess = turn.annotations.intent
        intent = None if held.is_command(turn.text) else aside_intent(turn.text, guess, self.intent_threshold)
        if intent is None or guess is None or self.skills.by_intent(intent) is held:
            return _Route(skill=held)
        state.skill_state[ROUTING_STATE] = {"aside": Aside(
            held.name, turn.text, intent, guess.confidence, guess.source,
            facts=turn.annotations.values.get("user_facts")).to_json()}
        turn.suggest(turn.say(check.add), turn.say(check.leave))
        turn.data["aside_check"] = intent
        return _Route(prefix=[turn.say(check.question)], keep_held=True, answered_by=held.name)

    def _apply_step(self, step: GraphStepLike, state: DialogState, turn: Turn) -> _Route:
        state.slots.update(step.set_slots)
        state.flow, state.node = step.flow, step.node
        if step.end or step.skill:
            state.flow = state.node = None
        prefix = [step.response] if step.response else []
        skill = self.skills.get(step.skill)
        if skill is not None and prefix:
            prefix.append("\n\n")
        return _Route(step=step, skill=skill, prefix=prefix)

    def _confident(self, turn: Turn) -> bool:
        guess = turn.annotations.intent
        return guess is not None and guess.confidence >= self.intent_threshold

    # --- running a skill -----------------------------------------------------

    async def _run_skill(self, skill: Skill, turn: Turn, state: DialogState, pieces: list[str],
                         stream: TurnStream) -> str:
        turn.state = state.skill_state.setdefault(skill.name, {})
        turn.was_holding = state.active_skill == skill.name
        budget = skill.time_budget_s or self.config.turn_timeout_s
        before = len(pieces)  # a graph node's words may come first; a rewrite replaces only the skill's
        generation = asyncio.create_task(_collect(skill.respond(turn), pieces, stream))
        stream.on_cancel(generation.cancel)
        try:
            done, _ = await asyncio.wait({generation}, timeout=budget)
        finally:
            stream.on_cancel(None)
        if not done:
            generation.cancel()
            await asyncio.gather(generation, return_exceptions=True)
            log.warning("turn over budget conversation=%s skill=%s budget_s=%.1f", turn.conversation_id,
                        skill.name, budget)
            if len(pieces) == 0 or not "".join(pieces).strip():
                pieces.append(TOO_SLOW.get(turn.language, TOO_SLOW["en"]))
            # A skill that holds the conversation (a story) keeps it: the next "continue" is still its.
            state.active_skill = skill.name if turn.keep_active else None
            return "incomplete"
        if generation.cancelled():
            pieces.append(" " + STOPPED.get(turn.language, STOPPED["en"]))
            state.active_skill = skill.name if turn.keep_active else None
            return "incomplete"
        generation.result()  # re-raises the skill's error into the catch-all
        if turn.rewritten is not None:
            pieces[before:] = [turn.rewritten]
        state.active_skill = skill.name if turn.keep_active else None
        return "complete"

    async def _run_candidates(self, options: list[tuple[Skill, IntentGuess | None]], turn: Turn,
                              state: DialogState, pieces: list[str], stream: TurnStream) -> tuple[str, str]:
        """Let each candidate skill answer on its own copy of the turn, keep the best reply, and make
        the winner's turn (state, slots, suggestions, data) the turn's. Returns (skill name, status)."""
        candidates = [Candidate(skill, guess, _candidate_turn(turn, state, skill, guess)) for skill, guess in options]
        budget = max(skill.time_budget_s or self.config.turn_timeout_s for skill, _ in options)
        tasks = [asyncio.create_task(_answer_candidate(c)) for c in candidates]
        stream.on_cancel(lambda: [task.cancel() for task in tasks])
        try:
            _, late = await asyncio.wait(tasks, timeout=budget)
        finally:
            stream.on_cancel(None)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        best = pick(candidates, turn.history)
        turn.annotations.values["candidates"] = [c.to_json(c is best) for c in candidates]
        if best is None:
            pieces.append(TOO_SLOW.get(turn.language, TOO_SLOW["en"]))
            return FALLBACK_SKILL, "incomplete"
        log.info("selector conversation=%s chose=%s scores=%s", turn.conversation_id, best.skill.name,
                 ",".join(f"{c.skill.name}:{c.score:.2f}" for c in candidates))
        pieces.append(best.text)
        stream.push(best.text)
        state.skill_state[best.skill.name] = best.turn.state
        state.slots.clear()
        state.slots.update(best.turn.slots)
        turn.suggestions[:] = best.turn.suggestions
        turn.data.update(best.turn.data)
        state.active_skill = best.skill.name if best.turn.keep_active else None
        return best.skill.name, "complete"

    async def _annotate(self, text: str, conversation_id: str) -> Annotations:
        """Run the annotators in order; a broken or slow one is logged and skipped, since
        annotations are advice and must not sink or stall the turn."""
        annotations = Annotations()
        budget = self.config.turn_timeout_s / 2
        for annotator in self.annotators:
            try:
                await asyncio.wait_for(annotator.annotate(text, annotations), budget)
            except TimeoutError:
                log.warning("annotator timed out annotator=%s conversation=%s budget_s=%.1f",
                            annotator.name, conversation_id, budget)
            except Exception:
                log.exception("annotator failed annotator=%s conversation=%s", annotator.name, conversation_id)
        return annotations

    # --- per-conversation ordering ------------------------------------------

    def _lock_for(self, key: tuple[str, str]) -> asyncio.Lock:
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        return self._locks.setdefault(key, asyncio.Lock())

    def _release_lock(self, key: tuple[str, str]) -> None:
        self._lock_users[key] -= 1
        if self._lock_users[key] == 0:
            del self._lock_users[key]
            del self._locks[key]


async def _collect(result: Any, pieces: list[str], stream: TurnStream) -> None:
    """Run a skill's respond(): a coroutine giving text, or an async generator of pieces."""
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str):
        pieces.append(result)
        stream.push(result)
        return
    if isinstance(result, AsyncIterator):
        try:
            async for piece in result:
                if piece:
                    pieces.append(piece)
                    stream.push(piece)
        finally:
            # Closing the generator promptly stops a model generation behind it.
            if hasattr(result, "aclose"):
                await result.aclose()
        return
    raise TypeError(f"a skill's respond() must give str or an async iterator of str, not {type(result).__name__}")


class _Sink:
    """Where a candidate's pieces go while it is not yet chosen: nowhere (they are kept in the candidate)."""

    def push(self, piece: str) -> None:
        pass


async def _answer_candidate(candidate: Candidate) -> None:
    try:
        await _collect(candidate.skill.respond(candidate.turn), candidate.pieces, _Sink())  # type: ignore[arg-type]
    except Exception:
        candidate.failed = True
        log.exception("candidate failed conversation=%s skill=%s", candidate.turn.conversation_id,
                      candidate.skill.name)


def _candidate_turn(turn: Turn, state: DialogState, skill: Skill, guess: IntentGuess | None) -> Turn:
    """The turn as this candidate sees it: its own intent, and copies of what it may change, so a
    candidate that is not chosen leaves nothing behind."""
    return dataclasses.replace(
        turn, annotations=dataclasses.replace(turn.annotations, intent=guess),
        slots=copy.deepcopy(turn.slots), state=copy.deepcopy(state.skill_state.get(skill.name, {})),
        suggestions=[], data={}, keep_active=False, rewritten=None)


def _replay(conversation_id: str, user_message_id: int, stored: StoredReply) -> Reply:
    """The stored answer to a message sent again (same client message id): nothing runs twice."""
    return Reply(conversation_id, stored.text, stored.skill or "dispatcher", message_id=stored.message_id,
                 user_message_id=user_message_id, intent=stored.intent, confidence=stored.confidence,
                 status=stored.status if stored.status in ("complete", "incomplete", "fallback") else "complete",
                 duplicate=True)


def _pick_language(incoming: Incoming, state: DialogState, annotations: Annotations, default: str) -> str:
    """The user's explicit choice wins, then this message's detected language, then the conversation's,
    then the client's (Telegram's language_code, the browser's): a short "ok" (no language of its own)
    keeps the conversation's language, and the client's is the first guess of a new one."""
    chosen = state.slots.get("language")
    if isinstance(chosen, str) and chosen:
        return chosen
    return annotations.language or state.language or incoming.language or default


# What the user said about themselves (the `user_facts` annotator) is kept in these slots.
USER_NAME_SLOT, USER_LIKES_SLOT = "user_name", "user_likes"
MAX_LIKES = 10


def _remember_user_facts(facts: Any, state: DialogState) -> None:
    """Keep the user's name and likes (the `user_facts` annotator's value) as slots, whichever skill
    answers the turn: "hi, I'm Olga" is a greeting, and "what's my name?" much later reads the slot."""
    if not isinstance(facts, dict):
        return
    name = facts.get("name")
    if isinstance(name, str) and name.strip():
        state.slots[USER_NAME_SLOT] = name.strip()[:60]
    likes = [x.strip()[:80] for x in facts.get("likes") or () if isinstance(x, str) and x.strip()]
    if likes:
        kept = [x for x in state.slots.get(USER_LIKES_SLOT) or () if isinstance(x, str) and x not in likes]
        state.slots[USER_LIKES_SLOT] = (kept + likes)[-MAX_LIKES:]


_VOWELS = set("aeiouyаеёиоуыэюя")


def _has_words(text: str) -> bool:
    """Whether the message reads as words rather than keyboard noise ("asdkjh qwe", "zqx", "???"):
    most of its words have a vowel, no run of five consonants and no letter three times running."""
    words = [w.lower() for w in re.findall(r"[^\W\d_]+", text) if len(w) >= 2]
    if not words:
        return False

    def wordlike(word: str) -> bool:
        if not any(c in _VOWELS for c in word) or re.search(r"(.)\1\1", word):
            return False
        return re.search(r"[^aeiouyаеёиоуыэюяьъ]{5,}", word) is None

    return sum(map(wordlike, words)) * 2 > len(words)


def _log_task_death(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("turn task died: %r", task.exception())
