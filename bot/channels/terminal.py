"""The terminal channel: one conversation on stdin/stdout, line by line, so it can be piped."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from bot.core.messages import Incoming, ReplyStream

# Where a reply was rewritten after it was streamed, in output that is not a terminal.
REWRITTEN_MARK = "(rewritten) "
CHANNEL = "terminal"


async def chat_loop(
    handle_turn: Callable[[Incoming], ReplyStream],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    user_id: str | None = None,
    prompt: bool | None = None,
) -> int:
    """Answer each input line through `handle_turn`, streaming the reply; returns the turn count.

    The prompt ("you> ") is shown only when stdin is a terminal, so piped output stays clean.
    """
    stdin = stdin or _tolerant(sys.stdin)
    stdout = stdout or _tolerant(sys.stdout)
    user_id = user_id or _local_user()
    show_prompt = stdin.isatty() if prompt is None else prompt
    loop = asyncio.get_running_loop()
    turns = 0
    while True:
        if show_prompt:
            stdout.write("you> ")
            stdout.flush()
        # Reading stdin blocks, so it runs in a thread; the event loop stays free.
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stream = handle_turn(Incoming(CHANNEL, user_id, line))
        stdout.write("tandem> ")
        shown = ""
        async for piece in stream:
            stdout.write(piece)
            stdout.flush()
            shown += piece
        reply = await stream.reply()
        if not shown:  # refused, busy or not saved: answered without streaming
            stdout.write(reply.text)
        elif shown.strip() != reply.text:
            # The skill rewrote what it streamed (a part failed a check once the reply was whole):
            # the final text replaces it, on the same line where the terminal can clear one.
            if "\n" not in shown and stdout.isatty():
                stdout.write("\r\x1b[2K" + "tandem> " + reply.text)
            else:  # a pipe cannot take text back: the final one follows, marked, on a line of its own
                stdout.write(f"\n{REWRITTEN_MARK}{reply.text}")
        if reply.suggestions:
            stdout.write("\n  [" + " | ".join(reply.suggestions) + "]")
        stdout.write("\n")
        stdout.flush()
        turns += 1
    return turns


def _tolerant(stream: TextIO) -> TextIO:
    """The process's own stream, replacing what it cannot decode or encode instead of raising:
    piped input may hold any bytes, and one bad byte must not end the chat with a traceback."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
    return stream


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "local"
