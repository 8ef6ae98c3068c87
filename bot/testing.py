"""Test helpers for bot authors: replay a happy path (user text → expected reply) through the real dispatcher."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.core.messages import Incoming, Reply, ReplyStream

Expected = str | re.Pattern[str] | Callable[[Reply], bool]


class HappyPathError(AssertionError):
    """A replayed turn did not answer as the happy path says."""


async def check_happy_path(
    handle_turn: Callable[[Incoming], ReplyStream],
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
    replies: list[Reply] = []
    transcript: list[str] = []
    for number, (text, expected) in enumerate(path, start=1):
        reply = await handle_turn(Incoming(channel, user_id, text, language=language)).reply()
        replies.append(reply)
        transcript += [f"  user: {text}", f"  bot ({reply.skill}): {reply.text}"]
        if not _matches(reply, expected):
            raise HappyPathError(
                f"turn {number}: expected {_describe(expected)}\n" + "\n".join(transcript)
            )
    return replies


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
