"""ChannelStateRepo: the feedback bookkeeping a channel does beside turns (which conversation a message is in,
an offer answered); dialog state is never written here, only by turns."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.database import Database
from bot.storage.schema import FeedbackOffer, Message


class ChannelStateRepo:
    """Lookups and offer bookkeeping for buttons (a thumb); a button that changes dialog state (a
    language, a rating that waits for a comment) is a turn of the skill it addresses instead."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
