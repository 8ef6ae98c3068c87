"""Simulated users for the load generator: web-widget (WebSocket) and HTTP API conversations
that play a script against a running Tandem and record every turn's latency and outcome."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.load_scripts import STORY_API, Script, build_script
from skills.smalltalk import PERSONA_FILE, Persona

# Canned small-talk answers the skill gives when the model failed (timed out, unavailable):
# such a turn is a model fallback, not a model answer.
_PERSONA = Persona.load(PERSONA_FILE)
MODEL_FALLBACK_TEXTS = tuple(t for texts in _PERSONA.fallback_replies.values() for t in texts)
# A turn refused as "busy" is sent again after the server's Retry-After (5 s), at most this often.
BUSY_ATTEMPTS = 4
BUSY_WAIT_S = 5.0
log = logging.getLogger("bench.load")


@dataclass
class TurnRecord:
    """One user turn as the client saw it. `outcome`: ok, incomplete (over the turn budget,
    partial text kept), model_fallback (the model failed, a canned answer came), or error."""

    channel: str
    kind: str
    latency_s: float | None
    generative: bool
    outcome: str
    error: str | None = None
    skill: str | None = None
    first_piece_s: float | None = None
    ended_at: float = 0.0


@dataclass
class ActionRecord:
    """Anything else a client did: open a conversation, a thumb, a rating."""

    channel: str
    kind: str
    latency_s: float | None
    error: str | None = None


@dataclass
class ConversationLedger:
    """What the server confirmed for one conversation, to count against the database later."""

    conversation_id: str
    channel: str
    acked_messages: int = 0
    # Acknowledged, then answered "I can't save messages right now" (no user_message_id):
    # the server said it did not store them.
    refused_messages: int = 0
    ratings: int = 0
    thumbs: int = 0

    def count_reply(self, reply: dict[str, Any]) -> None:
        if reply.get("status") == "fallback" and reply.get("user_message_id") is None:
            self.refused_messages += 1
        if (reply.get("data") or {}).get("rating") is not None:
            self.ratings += 1  # the feedback skill stored a rating given in the chat


@dataclass
class Recorder:
    turns: list[TurnRecord] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    ledgers: list[ConversationLedger] = field(default_factory=list)
    skipped_turns: int = 0  # turns not started because the level's deadline had passed
    # Turns the server refused for overload ("busy", nothing stored) and the client sent again,
    # as the widget does; a turn's latency includes its waits.
    busy_refusals: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0


@dataclass(frozen=True)
class LevelPlan:
    """One load level: how many conversations of each kind, how long, and how they behave."""

    ws: int
    http: int
    turns: int = 4
    duration_s: float = 60.0
    ramp_s: float = 10.0
    think_s: tuple[float, float] = (1.0, 5.0)
    turn_timeout_s: float = 130.0
    grace_s: float = 130.0
    seed: int = 7
    mix: dict[str, float] | None = None
    thumb_probability: float = 0.3
    rating_probability: float = 0.5


class TurnFailed(Exception):
    """A turn ended without a reply; `kind` is the error kind counted in the report."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ConnectionLost(TurnFailed):
    def __init__(self) -> None:
        super().__init__("connection")


def classify(reply: dict[str, Any]) -> tuple[bool, str, str | None]:
    """(generative, outcome, error) of a chat reply, from its `skill`, `status` and `data`."""
    status, skill, data = reply.get("status"), reply.get("skill"), reply.get("data") or {}
    if status == "fallback":
        return False, "error", "turn_fallback"  # the dispatcher's apology: the turn failed or was not stored
    if status == "rejected":
        return False, "error", "turn_rejected"
    generative = skill == "smalltalk" or (skill == "story" and isinstance(data.get("story"), dict)
                                          and "candidates" in data["story"])
    if status == "incomplete":
        return generative, "incomplete", None
    if skill == "smalltalk" and str(reply.get("text", "")).startswith(MODEL_FALLBACK_TEXTS):
        return True, "model_fallback", None
    if generative and skill == "story":
        return True, generation_outcome(data["story"]), None
    return generative, "ok", None


def generation_outcome(done: dict[str, Any]) -> str:
    """Outcome of a story generation (a GenerationDone as JSON)."""
    candidates = done.get("candidates") or []
    if not candidates:
        return "model_fallback"
    if any(c.get("status") == "incomplete" for c in candidates):
        return "incomplete"
    return "ok"


def fake_address(index: int, http: bool) -> str:
    """A distinct client address per simulated user, sent as X-Forwarded-For (the server is
    told to trust it), so per-address rate limits see many users, as behind a real proxy."""
    n = index * 2 + (1 if http else 0)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class _Clock:
    def __init__(self, plan: LevelPlan, started: float) -> None:
        self.soft = started + plan.duration_s  # no turn starts after this
        self.hard = self.soft + plan.grace_s  # no turn waits past this
        self.turn_timeout_s = plan.turn_timeout_s

    def timeout(self) -> float:
        return max(0.1, min(self.turn_timeout_s, self.hard - time.monotonic()))

    async def think(self, seconds: float) -> bool:
        """Sleep before a turn; False when the deadline passed (the conversation stops)."""
        left = self.soft - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(seconds, left))
        return time.monotonic() < self.soft


# --- the web widget --------------------------------------------------------------------

async def _frame(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    try:
        msg = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        raise TurnFailed("timeout") from None
    if msg.type == aiohttp.WSMsgType.TEXT:
        frame = msg.json()
        if isinstance(frame, dict):
            return frame
        raise TurnFailed("bad_frame")
    raise ConnectionLost()


async def _until(ws, deadline: float, wanted: set[str], client_id: str | None = None) -> dict[str, Any]:
    """Frames until one of `wanted` types (for `client_id`, when given) by `deadline`
    (time.monotonic()); an error or rejected frame fails."""
    while True:
        frame = await _frame(ws, max(0.05, deadline - time.monotonic()))
        kind = frame.get("type")
        if kind == "error":
            raise TurnFailed(f"ws_error:{frame.get('code')}")
        if kind == "rejected":
            raise TurnFailed("ws_rejected")
        if kind in wanted and (client_id is None or frame.get("client_id") in (None, client_id)):
            return frame


async def ws_conversation(session: aiohttp.ClientSession, base_url: str, script: Script, index: int,
                          rec: Recorder, clock: _Clock) -> None:
    headers = {"X-Forwarded-For": fake_address(index, http=False)}
    started = time.monotonic()
    try:
        ws = await asyncio.wait_for(session.ws_connect(f"{base_url}/ws", headers=headers, autoping=True),
                                    clock.timeout())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        kind = f"http_{exc.status}" if isinstance(exc, aiohttp.WSServerHandshakeError) else (
            "timeout" if isinstance(exc, TimeoutError) else "connection")
        rec.actions.append(ActionRecord("ws", "open", None, kind))
        return
    try:
        await ws.send_json({"type": "hello", "language": "en"})
        welcome = await _until(ws, time.monotonic() + clock.timeout(), {"welcome"})
    except (TurnFailed, ConnectionError, RuntimeError) as exc:
        rec.actions.append(ActionRecord("ws", "open", None, getattr(exc, "kind", "connection")))
        await ws.close()
        return
    rec.actions.append(ActionRecord("ws", "open", time.monotonic() - started))
    ledger = ConversationLedger(welcome["conversation_id"], "ws")
    rec.ledgers.append(ledger)
    try:
        for number, step in enumerate(script.steps):
            if not await clock.think(script.think[number]):
                rec.skipped_turns += len(script.steps) - number
                break
            reply = await _ws_turn(ws, clock, step, f"m{number}", ledger, rec)
            if reply is None:
                continue
            thumb = script.thumbs[number]
            if thumb and isinstance(reply.get("message_id"), int):
                await _ws_action(ws, clock, rec, "thumb", {"type": "thumb", "message_id": reply["message_id"],
                                                            "value": thumb}, "thumb_saved")
                ledger.thumbs += 1
        if script.rating is not None and time.monotonic() < clock.soft:
            await ws.send_json({"type": "offer", "kind": "rating"})
            await _ws_action(ws, clock, rec, "rating", {"type": "rating", "rating": script.rating,
                                                         "comment": script.comment}, "rating_saved")
            ledger.ratings += 1
    except TurnFailed:
        pass  # recorded where it happened; a broken socket ends the conversation
    finally:
        await ws.close()


async def _ws_turn(ws, clock: _Clock, step, client_id: str, ledger: ConversationLedger,
                   rec: Recorder) -> dict[str, Any] | None:
    started = time.monotonic()
    deadline = started + clock.timeout()
    first_piece = None
    try:
        for attempt in range(BUSY_ATTEMPTS):
            await ws.send_json({"type": "message", "client_id": client_id, "text": step.text})
            try:
                ack = await _until(ws, deadline, {"ack"}, client_id)
                break
            except TurnFailed as exc:
                # Refused for overload, nothing stored: wait and send it again, as the widget does.
                if exc.kind != "ws_error:busy" or attempt + 1 == BUSY_ATTEMPTS \
                        or time.monotonic() + BUSY_WAIT_S >= deadline:
                    raise
                rec.busy_refusals += 1
                await asyncio.sleep(BUSY_WAIT_S)
        if not ack.get("duplicate"):
            ledger.acked_messages += 1
        while True:
            frame = await _until(ws, deadline, {"delta", "reply"}, client_id)
            if frame["type"] == "delta" and first_piece is None:
                first_piece = time.monotonic() - started
            if frame["type"] == "reply":
                break
    except (TurnFailed, ConnectionError, RuntimeError) as exc:
        kind = getattr(exc, "kind", "connection")
        rec.turns.append(TurnRecord("ws", step.kind, None, False, "error", kind, ended_at=time.monotonic()))
        if kind in ("connection", "timeout"):
            raise TurnFailed(kind) from None  # the socket is gone or out of step: stop this conversation
        return None
    generative, outcome, error = classify(frame)
    rec.turns.append(TurnRecord("ws", step.kind, time.monotonic() - started, generative, outcome, error,
                                frame.get("skill"), first_piece, time.monotonic()))
    ledger.count_reply(frame)
    return frame


async def _ws_action(ws, clock: _Clock, rec: Recorder, kind: str, frame: dict[str, Any], wanted: str) -> None:
    started = time.monotonic()
    try:
        await ws.send_json(frame)
        await _until(ws, started + clock.timeout(), {wanted})
    except (TurnFailed, ConnectionError, RuntimeError) as exc:
        rec.actions.append(ActionRecord("ws", kind, None, getattr(exc, "kind", "connection")))
        raise TurnFailed(getattr(exc, "kind", "connection")) from None
    rec.actions.append(ActionRecord("ws", kind, time.monotonic() - started))


# --- the HTTP API ----------------------------------------------------------------------

async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any] | None, headers: dict[str, str],
                clock: _Clock, rec: Recorder | None = None) -> tuple[float, dict[str, Any]]:
    """(seconds, JSON answer) of a POST; TurnFailed with the error kind otherwise. A 503 "busy"
    (the server refused the turn for overload, storing nothing) is waited out and sent again."""
    started = time.monotonic()
    deadline = started + clock.timeout()
    for attempt in range(BUSY_ATTEMPTS):
        try:
            async with session.post(url, json=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=max(0.1, deadline - time.monotonic()))
                                    ) as response:
                if response.status >= 400:
                    error = await _error_code(response)
                    if error == "busy" and attempt + 1 < BUSY_ATTEMPTS and rec is not None:
                        rec.busy_refusals += 1
                        wait = float(response.headers.get("Retry-After", BUSY_WAIT_S))
                        if time.monotonic() + wait < deadline:
                            await asyncio.sleep(wait)
                            continue
                    raise TurnFailed("busy" if error == "busy" else f"http_{response.status}")
                answer = await response.json()
        except TimeoutError:
            raise TurnFailed("timeout") from None
        except (aiohttp.ClientError, OSError, ValueError):
            raise TurnFailed("connection") from None
        return time.monotonic() - started, answer
    raise TurnFailed("busy")


async def _error_code(response: aiohttp.ClientResponse) -> str | None:
    try:
        return (await response.json()).get("error", {}).get("code")
    except (aiohttp.ClientError, ValueError, AttributeError):
        return None


async def http_conversation(session: aiohttp.ClientSession, base_url: str, script: Script, index: int,
                            rec: Recorder, clock: _Clock) -> None:
    headers = {"X-Forwarded-For": fake_address(index, http=True)}
    try:
        seconds, opened = await _post(session, f"{base_url}/api/conversations", None, headers, clock)
    except TurnFailed as exc:
        rec.actions.append(ActionRecord("http", "open", None, exc.kind))
        return
    rec.actions.append(ActionRecord("http", "open", seconds))
    conversation_id = opened["conversation_id"]
    headers = {**headers, "Authorization": f"Bearer {opened['token']}"}
    ledger = ConversationLedger(conversation_id, "http")
    rec.ledgers.append(ledger)
    story_id: int | None = None
    for number, step in enumerate(script.steps):
        if not await clock.think(script.think[number]):
            rec.skipped_turns += len(script.steps) - number
            break
        try:
            if step.kind == STORY_API:
                story_id = await _story_turn(session, base_url, step.text, story_id, script, headers, rec, clock)
                continue
            seconds, reply = await _post(session, f"{base_url}/api/conversations/{conversation_id}/messages",
                                         {"text": step.text, "language": "en"}, headers, clock, rec)
        except TurnFailed as exc:
            rec.turns.append(TurnRecord("http", step.kind, None, False, "error", exc.kind, ended_at=time.monotonic()))
            continue
        ledger.acked_messages += 1
        generative, outcome, error = classify(reply)
        rec.turns.append(TurnRecord("http", step.kind, seconds, generative, outcome, error, reply.get("skill"),
                                    ended_at=time.monotonic()))
        ledger.count_reply(reply)
        thumb = script.thumbs[number]
        if thumb and isinstance(reply.get("message_id"), int):
            if await _http_action(session, f"{base_url}/api/messages/{reply['message_id']}/feedback",
                                  {"thumb": thumb}, headers, rec, clock, "thumb"):
                ledger.thumbs += 1
    if script.rating is not None and time.monotonic() < clock.soft:
        if await _http_action(session, f"{base_url}/api/conversations/{conversation_id}/rating",
                              {"rating": script.rating, "comment": script.comment}, headers, rec, clock, "rating"):
            ledger.ratings += 1


async def _story_turn(session, base_url: str, action: str, story_id: int | None, script: Script,
                      headers: dict[str, str], rec: Recorder, clock: _Clock) -> int | None:
    """Start a story (with the user's opening passage) or continue it with one candidate."""
    if action == "start" or story_id is None:
        seconds, answer = await _post(session, f"{base_url}/api/stories",
                                      {"title": "Load test", "text": script.story_opening}, headers, clock)
        rec.turns.append(TurnRecord("http", STORY_API, seconds, False, "ok", skill="story_api",
                                    ended_at=time.monotonic()))
        return answer["story"]["id"]
    seconds, done = await _post(session, f"{base_url}/api/stories/{story_id}/continue", {"candidates": 1},
                                headers, clock)
    rec.turns.append(TurnRecord("http", STORY_API, seconds, True, generation_outcome(done), skill="story_api",
                                ended_at=time.monotonic()))
    return story_id


async def _http_action(session, url: str, body: dict[str, Any], headers: dict[str, str], rec: Recorder,
                       clock: _Clock, kind: str) -> bool:
    try:
        seconds, _ = await _post(session, url, body, headers, clock)
    except TurnFailed as exc:
        rec.actions.append(ActionRecord("http", kind, None, exc.kind))
        return False
    rec.actions.append(ActionRecord("http", kind, seconds))
    return True


# --- a level -----------------------------------------------------------------------------

async def run_level(base_url: str, plan: LevelPlan) -> Recorder:
    """Play `plan.ws` widget and `plan.http` API conversations at once (arrivals spread over
    the ramp) until each finishes its script or the deadline passes."""
    rec = Recorder()
    rng = random.Random(plan.seed)
    users: list[tuple[bool, int, Script, float]] = []
    for index in range(plan.ws + plan.http):
        http = index >= plan.ws
        script = build_script(random.Random(rng.random()), index, plan.turns, http=http, mix=plan.mix,
                              think_s=plan.think_s, thumb_probability=plan.thumb_probability,
                              rating_probability=plan.rating_probability)
        users.append((http, index, script, rng.uniform(0, plan.ramp_s)))
    # limit=0: one connection per simulated user, as many as there are users.
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        rec.started_at = time.monotonic()
        clock = _Clock(plan, rec.started_at)

        async def user(http: bool, index: int, script: Script, delay: float) -> None:
            await asyncio.sleep(delay)
            play = http_conversation if http else ws_conversation
            await play(session, base_url, script, index, rec, clock)

        tasks = [asyncio.create_task(user(*u)) for u in users]
        # Every wait inside is bounded by the clock; the extra seconds only cover closing sockets.
        done, pending = await asyncio.wait(tasks, timeout=plan.duration_s + plan.grace_s + 15)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                log.error("simulated user crashed", exc_info=task.exception())
                rec.actions.append(ActionRecord("client", "crash", None, f"client:{type(task.exception()).__name__}"))
        rec.ended_at = max([t.ended_at for t in rec.turns] or [time.monotonic()])
    return rec
