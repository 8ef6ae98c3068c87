"""Replaying a conversation through the real dispatcher as one user: `Replay` turn by turn (the
conversation evaluation uses it), and `check_happy_path` (user text → expected reply) for tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.core.messages import Incoming, Reply, ReplyStream

Expected = str | re.Pattern[str] | Callable[[Reply], bool]
HandleTurn = Callable[[Incoming], ReplyStream]


class HappyPathError(AssertionError):
    """A replayed turn did not answer as the happy path says."""


class Replay:
    """One user's messages sent in order through `handle_turn`, each answered before the next is
    sent, as a person would; keeps the replies and a readable transcript of the exchange."""

    def __init__(self, handle_turn: HandleTurn, *, channel: str = "test", user_id: str = "happy-path",
                 language: str | None = None) -> None:
        self.handle_turn = handle_turn
        self.channel = channel
        self.user_id = user_id
        self.language = language
        self.replies: list[Reply] = []
        self.lines: list[str] = []

    async def say(self, text: str) -> Reply:
        reply = await self.handle_turn(Incoming(self.channel, self.user_id, text, language=self.language)).reply()
        self.replies.append(reply)
        self.lines += [f"  user: {text}", f"  bot ({reply.skill}): {reply.text}"]
        return reply

    def transcript(self) -> str:
        return "\n".join(self.lines)


async def check_happy_path(
    handle_turn: HandleTurn,
    path: Sequence[tuple[str, Expected]],
    *,
    channel: str = "test",
    user_id: str = "happy-path",
    language: str | None = None,
) -> list[Reply]:
    """Send each user text in order and compare the reply.

    Expected replies: a string (the reply must contain it, case-insensitively), a compiled
    regex (must search), or a predicate on the Reply. Fails with the whole exchange so far.
    """
    replay = Replay(handle_turn, channel=channel, user_id=user_id, language=language)
    for number, (text, expected) in enumerate(path, start=1):
        reply = await replay.say(text)
        if not _matches(reply, expected):
            raise HappyPathError(f"turn {number}: expected {_describe(expected)}\n" + replay.transcript())
    return replay.replies


def _matches(reply: Reply, expected: Expected) -> bool:
    if isinstance(expected, str):
        return expected.casefold() in reply.text.casefold()
    if isinstance(expected, re.Pattern):
        return expected.search(reply.text) is not None
    return bool(expected(reply))


def _describe(expected: Expected) -> str:
    if isinstance(expected, str):
        return f"a reply containing {expected!r}"
    if isinstance(expected, re.Pattern):
        return f"a reply matching /{expected.pattern}/"
    return f"a reply for which {getattr(expected, '__name__', 'the predicate')} holds"
