"""ConversationRepo: users, conversations, messages and dialog state, as the dispatcher needs them."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update

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
MESSAGES, STATES, CONVERSATIONS = Message.__table__, DialogStateRow.__table__, Conversation.__table__


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


@dataclass(frozen=True)
class StoredReply:
    """The bot's stored answer to a user message (what a resent client message gets again)."""

    message_id: int
    text: str
    skill: str | None
    intent: str | None
    confidence: float | None
    status: str


@dataclass
class OpenedTurn:
    """What the first transaction of a turn found and stored.

    `behind`: an earlier turn of this conversation is still running (in this process or another):
    wait for it (`is_behind`), then `reload` the state it left. `duplicate`: the client's message id
    was stored before, as `user_message_id`; `replayed` is its stored answer, if it has one yet.
    """

    user_id: int
    conversation_id: str
    user_message_id: int
    state: DialogState
    history: list[HistoryItem]
    behind: bool = False
    duplicate: bool = False
    replayed: StoredReply | None = None
    # Set once the reply is stored, which closes the ticket.
    closed: bool = False


class ConversationRepo:
    """Everything about conversations that must outlive the process."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self, table):
        """INSERT with ON CONFLICT for this database (SQLite and PostgreSQL both have it)."""
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # --- users -------------------------------------------------------------

    async def user_for(self, channel: str, external_id: str, display_name: str | None = None) -> int:
        """The id of the user known to `channel` as `external_id`, created on first sight."""
        async with self.db.transaction() as session:
            return await self._upsert_user(session, channel, external_id, display_name)

    async def _upsert_user(self, session, channel: str, external_id: str, display_name: str | None) -> int:
        # One statement, so two first messages at once (two processes) find one user, not an error.
        if display_name:
            # Names come from the channel (a Telegram first name): as hostile as any message.
            display_name = clean_text(display_name).strip()[:DISPLAY_NAME_CHARS] or None
        now = utcnow()
        statement = self._insert(User).values(channel=channel, external_id=external_id, display_name=display_name,
                                               created_at=now, last_seen_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["channel", "external_id"],
            set_={"last_seen_at": now,
                  "display_name": func.coalesce(statement.excluded.display_name, User.display_name)},
        ).returning(User.id)
        return (await session.execute(statement)).scalar_one()

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
        """The user's conversation on `channel` that has not ended, or a new one."""
        async with self.db.transaction() as session:
            return await self._current_or_new(session, user_id, channel)

    async def _current_or_new(self, session, user_id: int, channel: str) -> str:
        # The database keeps one open conversation per user and channel (uq_conversations_open), so
        # two processes opening one at once end up with the same, not with two.
        for _ in range(2):
            current = await session.scalar(
                select(Conversation.id)
                .where(Conversation.user_id == user_id, Conversation.channel == channel, Conversation.ended_at.is_(None))
            )
            if current is not None:
                return current
            now = utcnow()
            new_id = uuid.uuid4().hex
            inserted = await session.execute(
                self._insert(Conversation)
                .values(id=new_id, user_id=user_id, channel=channel, started_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["user_id", "channel"],
                                        index_where=Conversation.ended_at.is_(None))
            )
            if inserted.rowcount == 1:
                session.add(DialogStateRow(conversation_id=new_id, slots={}, skill_state={}))
                await session.flush()
                return new_id
        raise NotFound("no open conversation could be made")  # pragma: no cover - the row vanished twice

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

    async def last_language(self, user_id: int) -> str | None:
        """The language of the user's most recent conversation that has one (a new story's default)."""
        async with self.db.transaction() as session:
            return await session.scalar(
                select(DialogStateRow.language)
                .join(Conversation, Conversation.id == DialogStateRow.conversation_id)
                .where(Conversation.user_id == user_id, DialogStateRow.language.is_not(None))
                .order_by(DialogStateRow.updated_at.desc()).limit(1)
            )

    # --- a turn's two transactions -------------------------------------------

    async def open_turn(self, *, channel: str, external_id: str, display_name: str | None = None,
                        conversation_id: str | None = None, owner_id: int | None = None, text: str,
                        client_id: str | None = None, history_turns: int = 0, lease_s: float = 60.0) -> OpenedTurn:
        """A turn's first transaction: resolve (or open) the conversation, check who owns it, store
        the user message as the conversation's next ticket, and read the state and history.

        A conversation named by id must belong to `owner_id` (a channel that authenticated the user
        already) or else to the channel's user `external_id`; NotFound otherwise. A `client_id` seen
        before in the conversation stores nothing and comes back as a duplicate."""
        async with self.db.transaction() as session:
            if conversation_id is not None:
                user_id = await self._owner(session, conversation_id, channel, external_id, owner_id)
            else:
                user_id = await self._upsert_user(session, channel, external_id, display_name)
                conversation_id = await self._current_or_new(session, user_id, channel)
            # SQLAlchemy Core on the tables from here on: this runs on every turn, and the ORM's unit of
            # work cost more CPU than the statements themselves (py-spy, BENCHMARKS.md "Turns").
            # The state row's lock comes first: two copies of one message sent at once (a double tap)
            # then look for each other one after the other, and the second finds the first.
            row = await self._state_row(session, conversation_id, lock=True)
            if client_id is not None:
                known = await session.scalar(
                    select(Message.id).where(Message.conversation_id == conversation_id,
                                             Message.client_id == client_id, Message.author == "user"))
                if known is not None:
                    replayed = await self._reply_to(session, known)
                    return OpenedTurn(user_id, conversation_id, known, DialogState(), [], duplicate=True,
                                      replayed=replayed)
            now = utcnow()
            message_id = (await session.execute(
                MESSAGES.insert().values(
                    conversation_id=conversation_id, parent_id=row.last_message_id, author="user", text=text,
                    status="complete", client_id=client_id, pending_until=now + timedelta(seconds=lease_s),
                    created_at=now,
                ).returning(MESSAGES.c.id)
            )).scalar_one()
            await self._moved_on(session, conversation_id, message_id, now)
            behind = await self._behind(session, conversation_id, message_id)
            history = [] if behind else await self._history_before(session, conversation_id, message_id,
                                                                   history_turns)
            return OpenedTurn(user_id, conversation_id, message_id, _state_of(row), history, behind=behind)

    async def _state_row(self, session, conversation_id: str, *, lock: bool = False):
        statement = select(STATES).where(STATES.c.conversation_id == conversation_id)
        if lock and not self.db.is_sqlite:
            statement = statement.with_for_update()
        row = (await session.execute(statement)).first()
        if row is None:
            raise NotFound("no such conversation")
        return row

    @staticmethod
    async def _moved_on(session, conversation_id: str, message_id: int, now) -> None:
        """The conversation's last message is now `message_id`."""
        await session.execute(STATES.update().where(STATES.c.conversation_id == conversation_id)
                              .values(last_message_id=message_id))
        await session.execute(CONVERSATIONS.update().where(CONVERSATIONS.c.id == conversation_id)
                              .values(updated_at=now))

    async def is_behind(self, conversation_id: str, message_id: int) -> bool:
        """Whether an earlier turn of the conversation is still running (not answered, lease not over)."""
        async with self.db.transaction() as session:
            return await self._behind(session, conversation_id, message_id)

    async def reload(self, conversation_id: str, message_id: int, history_turns: int
                     ) -> tuple[DialogState, list[HistoryItem]]:
        """The state and history an earlier turn left, once the turn waiting on it may go."""
        async with self.db.transaction() as session:
            row = await self._state_row(session, conversation_id)
            return _state_of(row), await self._history_before(session, conversation_id, message_id, history_turns)

    async def renew_ticket(self, message_id: int, lease_s: float) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(Message).where(Message.id == message_id, Message.pending_until.is_not(None))
                                  .values(pending_until=utcnow() + timedelta(seconds=lease_s)))

    async def close_ticket(self, message_id: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(Message).where(Message.id == message_id).values(pending_until=None))

    async def unanswered(self, conversation_id: str) -> list[tuple[str, str]]:
        """Client id and text of the user messages whose turn is still running, in any process,
        and of the last message if its turn died with its process: a client that reconnects
        follows them (a died turn is then answered; one that later turns overtook is left)."""
        later = MESSAGES.alias("later")
        now = utcnow()
        async with self.db.transaction() as session:
            rows = await session.execute(
                select(MESSAGES.c.client_id, MESSAGES.c.text)
                .where(MESSAGES.c.conversation_id == conversation_id, MESSAGES.c.author == "user",
                       MESSAGES.c.client_id.is_not(None), MESSAGES.c.pending_until.is_not(None),
                       or_(MESSAGES.c.pending_until > now,
                           ~exists().where(later.c.conversation_id == conversation_id, later.c.id > MESSAGES.c.id)))
                .order_by(MESSAGES.c.id))
            return [(row.client_id, row.text) for row in rows]

    async def stored_reply(self, message_id: int) -> StoredReply | None:
        async with self.db.transaction() as session:
            return await self._reply_to(session, message_id)

    async def _owner(self, session, conversation_id: str, channel: str, external_id: str,
                     owner_id: int | None) -> int:
        if not is_conversation_id(conversation_id):
            raise NotFound("no such conversation")
        row = (await session.execute(
            select(Conversation.user_id, User.channel, User.external_id)
            .join(User, User.id == Conversation.user_id).where(Conversation.id == conversation_id)
        )).first()
        if row is None:
            raise NotFound("no such conversation")
        mine = row.user_id == owner_id if owner_id is not None else (row.channel, row.external_id) == (channel,
                                                                                                       external_id)
        if not mine:
            raise NotFound("no such conversation")  # someone else's looks like none
        return row.user_id

    @staticmethod
    async def _behind(session, conversation_id: str, message_id: int) -> bool:
        earlier = (select(Message.id)
                   .where(Message.conversation_id == conversation_id, Message.id < message_id,
                          Message.pending_until.is_not(None), Message.pending_until > utcnow()))
        return bool(await session.scalar(select(exists(earlier))))

    @staticmethod
    async def _history_before(session, conversation_id: str, message_id: int, limit: int) -> list[HistoryItem]:
        if limit <= 0:
            return []
        # Earlier turns' messages; a bot reply stored after this message (its turn waited on the
        # earlier one) counts, user messages of later turns do not.
        rows = await session.execute(
            select(Message.author, Message.text, Message.skill)
            .where(Message.conversation_id == conversation_id, Message.id != message_id,
                   or_(Message.author == "bot", Message.id < message_id))
            .order_by(Message.id.desc()).limit(limit)
        )
        return [HistoryItem(r.author, r.text, r.skill) for r in reversed(rows.all())]

    @staticmethod
    async def _reply_to(session, message_id: int) -> StoredReply | None:
        row = (await session.execute(
            select(Message.id, Message.text, Message.skill, Message.intent, Message.confidence, Message.status)
            .where(Message.parent_id == message_id, Message.author == "bot").order_by(Message.id).limit(1)
        )).first()
        return StoredReply(row.id, row.text, row.skill, row.intent, row.confidence, row.status) if row else None

    # --- messages and state ------------------------------------------------

    async def load_state(self, conversation_id: str) -> DialogState:
        async with self.db.transaction() as session:
            row = await session.get(DialogStateRow, conversation_id)
            return DialogState() if row is None else _state_of(row)

    async def add_user_message(self, conversation_id: str, message: NewMessage) -> int:
        """Store the user's message at once, so it is kept whatever happens to the turn."""
        async with self.db.transaction() as session:
            return await self._append(session, conversation_id, message)

    async def finish_turn(self, conversation_id: str, message: NewMessage, state: DialogState,
                          reply_to: int | None = None) -> int:
        """A turn's second transaction: store the bot's reply (to the user message `reply_to`, whose
        ticket it closes) and the new dialog state."""
        async with self.db.transaction() as session:
            message_id = await self._append(session, conversation_id, message, parent_id=reply_to)
            if reply_to is not None:
                await session.execute(MESSAGES.update().where(MESSAGES.c.id == reply_to).values(pending_until=None))
            await session.execute(
                STATES.update()
                .where(STATES.c.conversation_id == conversation_id)
                .values(
                    flow=state.flow, node=state.node, slots=state.slots, active_skill=state.active_skill,
                    skill_state=state.skill_state, language=state.language, turn_count=state.turn_count,
                    updated_at=utcnow(),
                )
            )
            return message_id

    async def _append(self, session, conversation_id: str, message: NewMessage, parent_id: int | None = None) -> int:
        state = await self._state_row(session, conversation_id, lock=True)
        now = utcnow()
        message_id = (await session.execute(
            MESSAGES.insert().values(
                conversation_id=conversation_id, parent_id=parent_id or state.last_message_id,
                author=message.author, text=message.text, skill=message.skill, intent=message.intent,
                confidence=message.confidence, annotations=message.annotations, flow=message.flow,
                node=message.node, status=message.status, latency_ms=message.latency_ms, created_at=now,
            ).returning(MESSAGES.c.id)
        )).scalar_one()
        await self._moved_on(session, conversation_id, message_id, now)
        return message_id

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


def _state_of(row: Any) -> DialogState:
    return DialogState(
        flow=row.flow, node=row.node, slots=dict(row.slots or {}), active_skill=row.active_skill,
        skill_state=dict(row.skill_state or {}), language=row.language, turn_count=row.turn_count,
    )
