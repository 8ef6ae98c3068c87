"""FeedbackRepo: thumbs on messages, 1–5 conversation ratings, comments, and the offers that asked for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from bot.core.errors import InputError, NotFound
from bot.core.text import clean_comment
from bot.storage.database import Database
from bot.storage.schema import Conversation, Feedback, FeedbackOffer, Message, is_row_id, is_conversation_id

MAX_COMMENT_CHARS = 4000


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    kind: str
    value: int | None
    comment: str | None
    message_id: int | None
    conversation_id: str


class FeedbackRepo:
    """Stores feedback after checking that the user may give it (their own conversation, a bot message)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_thumb(self, message_id: int, user_id: int, up: bool, channel: str | None = None) -> int:
        if not is_row_id(message_id):
            raise NotFound("no such message")
        async with self.db.transaction() as session:
            row = await session.execute(
                select(Message.conversation_id, Message.author, Conversation.user_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id == message_id)
            )
            found = row.first()
            if found is None or found.user_id != user_id:
                raise NotFound("no such message")
            if found.author != "bot":
                raise InputError("only the bot's messages can get a thumb")
            feedback = Feedback(
                conversation_id=found.conversation_id, message_id=message_id, user_id=user_id,
                kind="thumb", value=1 if up else -1, channel=channel,
            )
            session.add(feedback)
            await session.flush()
            return feedback.id

    async def add_rating(
        self, conversation_id: str, user_id: int, value: int, comment: str | None = None, channel: str | None = None
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise InputError("a rating is a whole number from 1 to 5")
        comment = _checked_comment(comment)
        async with self.db.transaction() as session:
            await self._check_owner(session, conversation_id, user_id)
            feedback = Feedback(
                conversation_id=conversation_id, user_id=user_id, kind="rating", value=value,
                comment=comment, channel=channel,
            )
            session.add(feedback)
            await session.flush()
            await session.execute(
                update(FeedbackOffer)
                .where(FeedbackOffer.conversation_id == conversation_id, FeedbackOffer.kind == "rating")
                .values(answered=True)
            )
            return feedback.id

    async def add_comment(
        self, conversation_id: str, user_id: int, text: str, message_id: int | None = None, channel: str | None = None
    ) -> int:
        comment = _checked_comment(text)
        if not comment:
            raise InputError("the comment is empty")
        async with self.db.transaction() as session:
            await self._check_owner(session, conversation_id, user_id)
            feedback = Feedback(
                conversation_id=conversation_id, user_id=user_id, kind="comment", comment=comment,
                message_id=message_id, channel=channel,
            )
            session.add(feedback)
            await session.flush()
            return feedback.id

    async def add_offer(self, conversation_id: str, kind: str = "rating", channel: str | None = None) -> int:
        async with self.db.transaction() as session:
            offer = FeedbackOffer(conversation_id=conversation_id, kind=kind, channel=channel)
            session.add(offer)
            await session.flush()
            return offer.id

    async def for_conversation(self, conversation_id: str) -> list[FeedbackRecord]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(Feedback).where(Feedback.conversation_id == conversation_id).order_by(Feedback.id)
            )
            return [FeedbackRecord(f.id, f.kind, f.value, f.comment, f.message_id, f.conversation_id) for f in rows]

    async def _check_owner(self, session: Any, conversation_id: str, user_id: int) -> None:
        if not is_conversation_id(conversation_id):
            raise NotFound("no such conversation")
        owner = await session.scalar(select(Conversation.user_id).where(Conversation.id == conversation_id))
        if owner != user_id:
            raise NotFound("no such conversation")


def _checked_comment(text: str | None) -> str | None:
    text = clean_comment(text)
    if text is not None and len(text) > MAX_COMMENT_CHARS:
        raise InputError(f"a comment is at most {MAX_COMMENT_CHARS} characters")
    return text
