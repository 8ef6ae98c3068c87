"""Retention: anonymous users (web widget and HTTP API sessions) that never stored anything are
deleted once they have not been seen for `anonymous_user_retention_days`."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select

from bot.storage.database import Database
from bot.storage.schema import Conversation, Feedback, Message, Story, User, utcnow

log = logging.getLogger(__name__)

# Users deleted per statement: a backlog of millions goes in short transactions, not one long lock.
BATCH = 1000
# How often a server looks for them (every process does: the delete is idempotent and cheap).
INTERVAL_S = 3600.0


def _idle_anonymous(cutoff: datetime):
    """Users with a session token (anonymous), not seen since `cutoff`, with no message, story or
    feedback: deleting them loses nothing, and their client gets a new session on its next request
    (a 401 makes the widget and the studio start one)."""
    wrote = (select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
             .where(Conversation.user_id == User.id))
    return select(User.id).where(
        User.token_hash.is_not(None), User.last_seen_at < cutoff,
        ~exists(wrote), ~exists().where(Story.user_id == User.id), ~exists().where(Feedback.user_id == User.id),
    )


async def delete_idle_anonymous_users(db: Database, retention_days: float, *, now: datetime | None = None) -> int:
    """Delete them (with their empty conversations and dialog states, by cascade); returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    deleted = 0
    while True:
        async with db.transaction() as session:
            ids = list(await session.scalars(_idle_anonymous(cutoff).limit(BATCH)))
            if ids:
                # Re-checked in the DELETE itself: a user who wrote since the SELECT is kept.
                await session.execute(delete(User).where(User.id.in_(ids), User.id.in_(_idle_anonymous(cutoff))))
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted


async def run_retention(db: Database, retention_days: float, *, interval_s: float = INTERVAL_S) -> None:
    """Every `interval_s`, until cancelled; a failed pass (database down) is logged and retried later."""
    while True:
        try:
            deleted = await delete_idle_anonymous_users(db, retention_days)
            if deleted:
                log.info("retention: deleted %d anonymous user(s) with no data, unseen for %g days",
                         deleted, retention_days)
        except Exception as exc:  # the next pass tries again; one line, no traceback flood
            log.warning("retention pass failed: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
