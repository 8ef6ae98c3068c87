"""Leases kept alive while work runs, and waiting for one: what turn tickets and story locks share.

A lease is a row's "held until" time in SQL. Its holder renews it every third of its length while
the work runs, so a process that dies stops holding it within one lease; whoever waits polls with
backoff, since another process's release cannot wake this one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.core.errors import StorageError

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.02
LONGEST_POLL_S = 0.5


def start_renewing(renew: Callable[[], Awaitable[object]], lease_s: float, what: str) -> asyncio.Task:
    """A task that calls `renew` every third of the lease until cancelled. A renewal the database
    refuses is logged and tried again at the next tick: the lease still has two thirds to run."""

    async def renewing() -> None:
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                await renew()
            except StorageError:
                log.warning("lease not renewed: %s", what)

    return asyncio.create_task(renewing(), name=f"renew {what}")


async def poll_until(ready: Callable[[], Awaitable[bool]], *, woken: Callable[[], asyncio.Event] | None = None,
                     ) -> None:
    """Wait until `ready()` is true, asking again after 20 ms, then each time half again as long
    (at most 0.5 s); `woken` gives an event this process sets when it frees what is waited for,
    so a wait on this process's own work ends at once."""
    delay = FIRST_POLL_S
    while not await ready():
        if woken is None:
            await asyncio.sleep(delay)
        else:
            try:
                await asyncio.wait_for(woken().wait(), delay)
            except TimeoutError:
                pass
        delay = min(LONGEST_POLL_S, delay * 1.5)
