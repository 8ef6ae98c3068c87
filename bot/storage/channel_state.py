"""ChannelStateRepo: what a channel looks up and keeps beside turns (which conversation a message is in,
an offer answered, whether a button's turn was taken); dialog state is never written here, only by turns."""

from __future__ import annotations

from sqlalchemy import exists, select

from bot.storage.database import Database
from bot.storage.schema import Conversation, FeedbackOffer, Message


class ChannelStateRepo:
    """Lookups and offer bookkeeping for buttons (a thumb); a button that changes dialog state (a
    language, a rating that waits for a comment) is a turn of the skill it addresses instead."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def conversation_of_message(self, message_id: int) -> str | None:
        async with self.db.transaction() as session:
            return await session.scalar(select(Message.conversation_id).where(Message.id == message_id))

    async def has_user_message(self, user_id: int, client_id: str) -> bool:
        """Whether a message of `user_id` with this client message id is stored, in any of their
        conversations: a button whose turn has been taken already (by this process or another)."""
        async with self.db.transaction() as session:
            mine = select(Conversation.id).where(Conversation.user_id == user_id)
            return bool(await session.scalar(select(exists().where(
                Message.conversation_id.in_(mine), Message.client_id == client_id, Message.author == "user"))))

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
