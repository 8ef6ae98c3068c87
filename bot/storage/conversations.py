"""ConversationRepo: users, conversations, messages and dialog state, as the dispatcher needs them."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update

from bot.core.errors import NotFound
from bot.core.skill import HistoryItem
from bot.core.state import DialogState
from bot.core.text import clean_text
from bot.storage.database import Database
from bot.storage.schema import (
    Conversation, DialogStateRow, Feedback, FeedbackOffer, LoreEntry, Message, Passage, Story, StorySummary, User,
    is_conversation_id, utcnow,
)

DISPLAY_NAME_CHARS = 256  # users.display_name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class NewMessage:
    """A message to store; the repository fills in ids, parent and time."""

    author: str
    text: str
    skill: str | None = None
    intent: str | None = None
    confidence: float | None = None
    annotations: dict[str, Any] | None = None
    flow: str | None = None
    node: str | None = None
    status: str = "complete"
    latency_ms: int | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: str
    parent_id: int | None
    author: str
    text: str
    skill: str | None
    intent: str | None
    status: str
    created_at: Any


class ConversationRepo:
    """Everything about conversations that must outlive the process."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- users -------------------------------------------------------------

    async def user_for(self, channel: str, external_id: str, display_name: str | None = None) -> int:
        """The id of the user known to `channel` as `external_id`, created on first sight."""
        if display_name:
            # Names come from the channel (a Telegram first name): as hostile as any message.
            display_name = clean_text(display_name).strip()[:DISPLAY_NAME_CHARS] or None
        async with self.db.transaction() as session:
            user = await session.scalar(
                select(User).where(User.channel == channel, User.external_id == external_id)
            )
            if user is None:
                user = User(channel=channel, external_id=external_id, display_name=display_name)
                session.add(user)
                await session.flush()
            else:
                user.last_seen_at = utcnow()
                if display_name and user.display_name != display_name:
                    user.display_name = display_name
            return user.id

    async def create_token_user(self, channel: str) -> tuple[int, str]:
        """A new anonymous user (web widget, HTTP API) and its session token, shown once."""
        token = secrets.token_urlsafe(32)
        async with self.db.transaction() as session:
            user = User(channel=channel, external_id=uuid.uuid4().hex, token_hash=hash_token(token))
            session.add(user)
            await session.flush()
            return user.id, token

    async def user_by_token(self, token: str) -> int | None:
        async with self.db.transaction() as session:
            return await session.scalar(select(User.id).where(User.token_hash == hash_token(token)))

    async def delete_user(self, user_id: int) -> None:
        """Delete the user and everything kept about them: conversations, messages, feedback,
        dialog state and stories (with passages, lore and summaries), in one transaction."""
        async with self.db.transaction() as session:
            conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
            story_ids = select(Story.id).where(Story.user_id == user_id)
            for table in (StorySummary, LoreEntry):
                await session.execute(delete(table).where(table.story_id.in_(story_ids)))
            await session.execute(update(Passage).where(Passage.story_id.in_(story_ids)).values(parent_id=None))
            await session.execute(delete(Passage).where(Passage.story_id.in_(story_ids)))
            await session.execute(delete(Story).where(Story.user_id == user_id))
            # Explicit deletes (children first) so it holds even where cascades are off.
            await session.execute(delete(DialogStateRow).where(DialogStateRow.conversation_id.in_(conversation_ids)))
            await session.execute(delete(Feedback).where(Feedback.user_id == user_id))
            await session.execute(delete(FeedbackOffer).where(FeedbackOffer.conversation_id.in_(conversation_ids)))
            await session.execute(update(Message).where(Message.conversation_id.in_(conversation_ids)).values(parent_id=None))
            await session.execute(delete(Message).where(Message.conversation_id.in_(conversation_ids)))
            await session.execute(delete(Conversation).where(Conversation.user_id == user_id))
            await session.execute(delete(User).where(User.id == user_id))

    # --- conversations -----------------------------------------------------

    async def open_conversation(self, user_id: int, channel: str) -> str:
        """Start a new conversation (ending the user's current one on this channel)."""
        async with self.db.transaction() as session:
            now = utcnow()
            await session.execute(
                update(Conversation)
                .where(Conversation.user_id == user_id, Conversation.channel == channel, Conversation.ended_at.is_(None))
                .values(ended_at=now)
            )
            conversation = Conversation(id=uuid.uuid4().hex, user_id=user_id, channel=channel, started_at=now, updated_at=now)
            session.add(conversation)
            session.add(DialogStateRow(conversation_id=conversation.id, slots={}, skill_state={}))
            return conversation.id

    async def current_conversation(self, user_id: int, channel: str) -> str:
        """The user's newest conversation on `channel` that has not ended, or a new one."""
        async with self.db.transaction() as session:
            current = await session.scalar(
                select(Conversation.id)
                .where(Conversation.user_id == user_id, Conversation.channel == channel, Conversation.ended_at.is_(None))
                .order_by(Conversation.started_at.desc())
                .limit(1)
            )
        return current or await self.open_conversation(user_id, channel)

    async def owner_of(self, conversation_id: str) -> int | None:
        if not is_conversation_id(conversation_id):
            return None
        async with self.db.transaction() as session:
            return await session.scalar(select(Conversation.user_id).where(Conversation.id == conversation_id))

    async def require_owner(self, conversation_id: str, user_id: int) -> None:
        """NotFound unless the conversation exists and belongs to `user_id` (the two look alike)."""
        if await self.owner_of(conversation_id) != user_id:
            raise NotFound("no such conversation")

    async def end_conversation(self, conversation_id: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == conversation_id).values(ended_at=utcnow())
            )

    async def list_conversations(self, user_id: int) -> list[dict[str, Any]]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.channel, Conversation.started_at, Conversation.ended_at)
                .where(Conversation.user_id == user_id)
                .order_by(Conversation.started_at.desc())
            )
            return [
                {"id": r.id, "channel": r.channel, "started_at": r.started_at.isoformat(),
                 "ended_at": r.ended_at.isoformat() if r.ended_at else None}
                for r in rows
            ]

    # --- messages and state ------------------------------------------------

    async def load_state(self, conversation_id: str) -> DialogState:
        async with self.db.transaction() as session:
            row = await session.get(DialogStateRow, conversation_id)
            if row is None:
                return DialogState()
            return DialogState(
                flow=row.flow, node=row.node, slots=dict(row.slots or {}), active_skill=row.active_skill,
                skill_state=dict(row.skill_state or {}), language=row.language, turn_count=row.turn_count,
            )

    async def add_user_message(self, conversation_id: str, message: NewMessage) -> int:
        """Store the user's message at once, so it is kept whatever happens to the turn."""
        async with self.db.transaction() as session:
            return await self._append(session, conversation_id, message)

    async def finish_turn(self, conversation_id: str, message: NewMessage, state: DialogState) -> int:
        """Store the bot's reply and the new dialog state in one transaction."""
        async with self.db.transaction() as session:
            message_id = await self._append(session, conversation_id, message)
            await session.execute(
                update(DialogStateRow)
                .where(DialogStateRow.conversation_id == conversation_id)
                .values(
                    flow=state.flow, node=state.node, slots=state.slots, active_skill=state.active_skill,
                    skill_state=state.skill_state, language=state.language, turn_count=state.turn_count,
                    updated_at=utcnow(),
                )
            )
            return message_id

    async def _append(self, session, conversation_id: str, message: NewMessage) -> int:
        state = await session.get(DialogStateRow, conversation_id, with_for_update=not self.db.is_sqlite)
        if state is None:
            raise NotFound("no such conversation")
        row = Message(
            conversation_id=conversation_id, parent_id=state.last_message_id, author=message.author,
            text=message.text, skill=message.skill, intent=message.intent, confidence=message.confidence,
            annotations=message.annotations, flow=message.flow, node=message.node, status=message.status,
            latency_ms=message.latency_ms,
        )
        session.add(row)
        await session.flush()
        state.last_message_id = row.id
        await session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(updated_at=utcnow())
        )
        return row.id

    async def history(self, conversation_id: str, limit: int) -> list[HistoryItem]:
        """The last `limit` messages, oldest first."""
        if limit <= 0:
            return []
        async with self.db.transaction() as session:
            rows = await session.execute(
                select(Message.author, Message.text, Message.skill)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return [HistoryItem(r.author, r.text, r.skill) for r in reversed(rows.all())]

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
            )
            return [
                StoredMessage(m.id, m.conversation_id, m.parent_id, m.author, m.text, m.skill, m.intent,
                              m.status, m.created_at)
                for m in rows
            ]

    async def message_count(self, conversation_id: str) -> int:
        async with self.db.transaction() as session:
            return await session.scalar(
                select(func.count()).select_from(Message).where(Message.conversation_id == conversation_id)
            ) or 0
