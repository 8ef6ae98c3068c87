"""The checks of one reply against its expected turn: route, graph node and the reply's properties."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.messages import Reply
from bot.core.register import formal_address
from bot.evaluation.conversation_set import ExpectedTurn, comparable
from bot.story.polish import script_language

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
# A sentence ends at . ! ? … (and any closing quote or bracket) before a space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»)\]]*\s+|\n+")
_WORDLIKE = re.compile(r"\w")
@dataclass(frozen=True)
class Observed:
    """What one turn produced, and what came before it in the same conversation."""

    reply: Reply
    node: str | None  # "flow.node" of the graph node that answered, if one did
    earlier: Sequence[str] = ()  # the bot's earlier replies in this conversation, oldest first


def reply_script(text: str) -> str | None:
    """"ru" or "en" by the letters the reply is written in; None when it has no letters. Short
    replies ("Сейчас 14:05") that the story filter's sample is too small for go by majority."""
    judged = script_language(text)
    if judged is not None:
        return judged
    cyrillic, latin = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    if cyrillic == latin == 0:
        return None
    return "ru" if cyrillic > latin else "en"


def count_sentences(text: str) -> int:
    return sum(1 for part in _SENTENCE_END.split(text.strip()) if _WORDLIKE.search(part))


def route_failures(turn: ExpectedTurn, seen: Observed) -> list[str]:
    failures = []
    routes = turn.routes
    if routes and seen.reply.skill not in routes:
        failures.append(f"route: expected {' or '.join(routes)}, got {seen.reply.skill}")
    if turn.node is not None and seen.node != turn.node:
        failures.append(f"node: expected {turn.node}, got {seen.node or 'no graph node'}")
    return failures


def property_failures(turn: ExpectedTurn, seen: Observed) -> list[str]:
    """Everything but the route: what the reply says, in which language, how it is offered."""
    reply = seen.reply
    text, folded = reply.text, reply.text.casefold()
    failures = []
    missing = [s for s in turn.contains if s.casefold() not in folded]
    if missing:
        failures.append(f"contains: missing {_listed(missing)}")
    if turn.contains_any and not any(s.casefold() in folded for s in turn.contains_any):
        failures.append(f"contains_any: none of {_listed(turn.contains_any)}")
    present = [s for s in turn.not_contains if s.casefold() in folded]
    if present:
        failures.append(f"not_contains: has {_listed(present)}")
    if turn.regex is not None and re.search(turn.regex, text, re.IGNORECASE) is None:
        failures.append(f"regex: /{turn.regex}/ does not match")
    script = reply_script(text)
    if turn.language is not None and script != turn.language:
        failures.append(f"language: expected {turn.language}, the reply is {script or 'without letters'}")
    if turn.max_sentences is not None and (count := count_sentences(text)) > turn.max_sentences:
        failures.append(f"max_sentences: {count} sentences, at most {turn.max_sentences}")
    offered = {s.casefold() for s in reply.suggestions}
    absent = [s for s in turn.suggestions if s.casefold() not in offered]
    if absent:
        failures.append(f"suggestions: {_listed(absent)} not in {list(reply.suggestions)}")
    if turn.suggestions_any and not any(s.casefold() in offered for s in turn.suggestions_any):
        failures.append(f"suggestions_any: none of {_listed(turn.suggestions_any)} in {list(reply.suggestions)}")
    if turn.status is not None and reply.status != turn.status:
        failures.append(f"status: expected {turn.status}, got {reply.status}")
    if turn.not_same_as_previous and seen.earlier and comparable(seen.earlier[-1]) == comparable(text):
        failures.append("not_same_as_previous: the same reply as the turn before")
    if turn.not_repeated and comparable(text) in {comparable(before) for before in seen.earlier}:
        failures.append("not_repeated: an earlier reply of this conversation, again")
    # A generated story passage is fiction: its characters may well say вы to each other.
    if turn.informal and script == "ru" and "story" not in reply.data:
        formal = formal_address(text)
        if formal:
            failures.append(f"informal: addresses the user as вы ({_listed(formal)})")
    return failures


def _listed(texts: Sequence[str]) -> str:
    return ", ".join(repr(t) for t in texts)
