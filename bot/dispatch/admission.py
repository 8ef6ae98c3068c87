"""Admission: the one gate every action on a conversation or story passes (chat turns, button clicks,
story actions from any channel or the story API): fair per user, bounded overall, refused at once."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from bot.core.errors import BotError

log = logging.getLogger(__name__)

UserKey = tuple[str, str]


class Busy(BotError):
    """Refused for overload before anything was stored: send it again in a few seconds."""


def user_key(channel: str, user_id: str, owner_id: int | None = None) -> UserKey:
    """Who an action counts against: the stored user where the channel knows it (web, API, story
    API alike), else the channel's own user id (Telegram, terminal)."""
    return ("user", str(owner_id)) if owner_id is not None else (channel, user_id)


class Admission:
    """Counts the actions in flight, overall and per user.

    `max_per_user` (0 = none): a user past their own share is refused while others still get in,
    so one greedy client cannot fill `max_total` for everyone. `max_total` (0 = none): past it,
    everyone is refused at once rather than accepted to wait out the database pool's timeout.
    """

    def __init__(self, max_total: int, max_per_user: int) -> None:
        self.max_total = max_total
        self.max_per_user = max_per_user
        self.in_flight = 0
        self._per_user: dict[UserKey, int] = {}
        # Refusals since the last warning: one warning a second at most, so overload does not
        # also flood the log.
        self._refused = 0
        self._refused_logged_at = 0.0

    def try_enter(self, key: UserKey) -> bool:
        mine = self._per_user.get(key, 0)
        if (self.max_per_user and mine >= self.max_per_user) or (self.max_total and self.in_flight >= self.max_total):
            self._note_refusal()
            return False
        self._per_user[key] = mine + 1
        self.in_flight += 1
        return True

    def leave(self, key: UserKey) -> None:
        self.in_flight -= 1
        left = self._per_user.get(key, 1) - 1
        if left > 0:
            self._per_user[key] = left
        else:
            self._per_user.pop(key, None)

    @contextlib.contextmanager
    def entered(self, key: UserKey) -> Iterator[None]:
        """For the length of an action; raises Busy when it may not start."""
        if not self.try_enter(key):
            raise Busy("too many actions at once")
        try:
            yield
        finally:
            self.leave(key)

    def _note_refusal(self) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= 1.0:
            log.warning("refused for overload: %d since the last warning, %d in flight", self._refused,
                        self.in_flight)
            self._refused, self._refused_logged_at = 0, now
