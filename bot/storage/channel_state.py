"""ChannelStateRepo: the few writes a channel makes outside a turn (a slot, a held skill, an answered offer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.core.errors import NotFound
from bot.storage.database import Database
from bot.storage.schema import DialogStateRow, FeedbackOffer, Message, utcnow


class ChannelStateRepo:
    """Small changes to a conversation's stored state, for buttons and commands that are not turns."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_slot(self, conversation_id: str, key: str, value: Any) -> None:
        """Set one dialog slot (e.g. "language", which the dispatcher's language choice reads)."""
        async with self.db.transaction() as session:
            row = await session.get(DialogStateRow, conversation_id, with_for_update=not self.db.is_sqlite)
            if row is None:
                raise NotFound("no such conversation")
            row.slots = {**(row.slots or {}), key: value}
            row.language = value if key == "language" else row.language
            row.updated_at = utcnow()

    async def hold(self, conversation_id: str, skill: str, skill_state: dict[str, Any]) -> None:
        """Give the conversation's next turn to `skill`, in `skill_state` (e.g. the feedback skill
        waiting for a comment after a rating made with a button)."""
        async with self.db.transaction() as session:
            row = await session.get(DialogStateRow, conversation_id, with_for_update=not self.db.is_sqlite)
            if row is None:
                raise NotFound("no such conversation")
            row.active_skill = skill
            row.skill_state = {**(row.skill_state or {}), skill: skill_state}
            row.updated_at = utcnow()

    async def conversation_of_message(self, message_id: int) -> str | None:
        async with self.db.transaction() as session:
            return await session.scalar(select(Message.conversation_id).where(Message.id == message_id))

    async def answer_offer(self, conversation_id: str, kind: str) -> bool:
        """Mark the oldest unanswered offer of `kind` answered; False when there was none."""
        async with self.db.transaction() as session:
            offer = await session.scalar(
                select(FeedbackOffer)
                .where(FeedbackOffer.conversation_id == conversation_id, FeedbackOffer.kind == kind,
                       FeedbackOffer.answered.is_(False))
                .order_by(FeedbackOffer.id)
                .limit(1)
            )
            if offer is None:
                return False
            offer.answered = True
            return True
