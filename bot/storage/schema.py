"""The SQL tables (SQLAlchemy 2 declarative); Alembic migrations in migrations/ must match them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


# Row ids and the columns that hold them are 64-bit: BIGINT on PostgreSQL, and on SQLite INTEGER,
# which is already 64-bit and, as the primary key, the rowid that SQLite numbers itself (a BIGINT
# primary key there would not be). A number outside that range names no row, and sending it to
# the driver would fail instead of finding nothing.
RowId = BigInteger().with_variant(Integer(), "sqlite")
MAX_ROW_ID = 2**63 - 1
# Conversation ids are made by uuid4().hex; anything else (NUL, surrogates, kilobytes) names none.
_CONVERSATION_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")


def is_row_id(value: object) -> bool:
    """Whether `value` can be an integer primary key (a caller's id that may or may not exist)."""
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_ROW_ID - 1 <= value <= MAX_ROW_ID


def is_conversation_id(value: object) -> bool:
    return isinstance(value, str) and _CONVERSATION_ID.fullmatch(value) is not None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    """A person as one channel knows them (a Telegram user id, a web session, the terminal)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="channel_external_id"),
        # Retention finds anonymous users not seen for a while.
        Index("ix_users_channel_last_seen", "channel", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str | None] = mapped_column(String(8))
    # sha256 of the session token for web/API users; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """A conversation of one user on one channel; the newest one not ended is the current one."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_started", "user_id", "started_at"),
        Index("ix_conversations_started_at", "started_at"),
        # One open conversation per user and channel, whichever process opens it.
        Index("uq_conversations_open", "user_id", "channel", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(RowId, ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()


class Message(Base):
    """One message, by the user or the bot. Never updated in place: retries and edits are
    new rows whose `parent_id` points at the message they follow, so history is a tree."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # The dashboard's windows (messages per day, user messages of the window).
        Index("ix_messages_created_at", "created_at"),
        Index("ix_messages_author_created_at", "author", "created_at"),
        # Foreign keys: a cascading delete finds the rows that refer to it without a scan.
        Index("ix_messages_parent_id", "parent_id"),
        # A client's message id is an idempotency key within its conversation.
        Index("uq_messages_conversation_client", "conversation_id", "client_id", unique=True),
        CheckConstraint("author IN ('user', 'bot')", name="author"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(RowId, ForeignKey("messages.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    skill: Mapped[str | None] = mapped_column(String(64))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column()
    annotations: Mapped[dict[str, Any] | None] = mapped_column()
    # The dialog graph position that produced a bot message, for feedback by node.
    flow: Mapped[str | None] = mapped_column(String(64))
    node: Mapped[str | None] = mapped_column(String(64))
    # complete | incomplete (cut short: timeout, stop, model error) | fallback | rejected
    status: Mapped[str] = mapped_column(String(16), default="complete")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # The id the client gave its message (widget, API, Telegram update); None for the bot's.
    client_id: Mapped[str | None] = mapped_column(String(64))
    # A user message whose turn is running: later turns of the conversation wait until it is
    # answered (cleared) or this time has passed (the process running it died).
    pending_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    """A thumb on a bot message (value ±1), a 1–5 rating of a conversation, or a free comment."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("kind IN ('thumb', 'rating', 'comment')", name="kind"),
        CheckConstraint(
            "(kind = 'thumb' AND value IN (-1, 1)) OR (kind = 'rating' AND value BETWEEN 1 AND 5)"
            " OR (kind = 'comment' AND value IS NULL)",
            name="value_range",
        ),
        Index("ix_feedback_conversation_id", "conversation_id"),
        Index("ix_feedback_message_id", "message_id"),
        Index("ix_feedback_user_id", "user_id"),
        Index("ix_feedback_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(RowId, ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(RowId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackOffer(Base):
    """A request for feedback shown to a user (e.g. "rate this conversation"), for response rates."""

    __tablename__ = "feedback_offers"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(32))
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DialogStateRow(Base):
    """The persisted bot.core.state.DialogState of one conversation."""

    __tablename__ = "dialog_states"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    flow: Mapped[str | None] = mapped_column(String(64))
    node: Mapped[str | None] = mapped_column(String(64))
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active_skill: Mapped[str | None] = mapped_column(String(64))
    skill_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    language: Mapped[str | None] = mapped_column(String(8))
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    # The last message of the conversation: the next user message's parent.
    last_message_id: Mapped[int | None] = mapped_column(RowId)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Story(Base):
    """A story one user writes with the model. `head_id` is the cursor: the passage the story
    currently ends at (None before the first passage); undo and branch only move it.
    `cursor` holds the redo stack and the pending candidates, both lists of passage ids."""

    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_user_updated", "user_id", "updated_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    user_id: Mapped[int] = mapped_column(RowId, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    genre: Mapped[str | None] = mapped_column(String(100))
    premise: Mapped[str | None] = mapped_column(Text)
    style: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    # Always at the top of the prompt.
    memory: Mapped[str] = mapped_column(Text, default="")
    # Inserted near the end of the prompt, to steer the next passage.
    author_note: Mapped[str] = mapped_column(Text, default="")
    # Sampling and candidate settings of this story (bot.story.settings.StorySettings).
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # No foreign key: passages point at their story, and a cycle would complicate deletes.
    head_id: Mapped[int | None] = mapped_column(RowId)
    cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The story lock across processes: who acts on the story now, and until when (a holder that
    # died stops counting then); renewed while a passage is generated (StoryService._locked).
    lease_holder: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Passage(Base):
    """One passage of a story. Passages form a tree by `parent_id` and are never updated in
    text: retries, edits and branches add rows. `source_id` is the passage an edit or copy
    was made from; `candidate_group` ties candidates generated together."""

    __tablename__ = "passages"
    __table_args__ = (
        Index("ix_passages_story_id_id", "story_id", "id"),
        Index("ix_passages_parent_id", "parent_id"),
        CheckConstraint("author IN ('user', 'model', 'edited')", name="author"),
        CheckConstraint("status IN ('complete', 'incomplete')", name="status"),
        CheckConstraint("rating IN (-1, 1)", name="rating"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    story_id: Mapped[int] = mapped_column(RowId, ForeignKey("stories.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(RowId, ForeignKey("passages.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    candidate_group: Mapped[int | None] = mapped_column(RowId)
    chosen_at: Mapped[datetime | None] = mapped_column()
    source_id: Mapped[int | None] = mapped_column(RowId)
    # The writer's thumb on the passage: 1 up, -1 down, NULL none (the studio's thumbs).
    rating: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoreEntry(Base):
    """World knowledge put into the prompt when one of its keys occurs in recent passages."""

    __tablename__ = "story_lore"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    story_id: Mapped[int] = mapped_column(RowId, ForeignKey("stories.id", ondelete="CASCADE"), index=True)
    # Comma-separated keywords, matched case-insensitively as word prefixes.
    keys: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    # Switched off, an entry stays stored but never enters the prompt.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StorySummary(Base):
    """A model-made summary of the story from its first passage through `through_id`; the path
    to a passage is unique in the tree, so that passage names the summarised text."""

    __tablename__ = "story_summaries"
    __table_args__ = (
        Index("ix_story_summaries_story_through", "story_id", "through_id"),
        Index("ix_story_summaries_through_id", "through_id"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    story_id: Mapped[int] = mapped_column(RowId, ForeignKey("stories.id", ondelete="CASCADE"))
    through_id: Mapped[int] = mapped_column(RowId, ForeignKey("passages.id", ondelete="CASCADE"))
    # How many passages the summary covers (the path length through `through_id`).
    covered: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminSession(Base):
    """A sign-in to the /admin dashboard: the cookie carries a random secret, this row its sha256
    (never the secret), so a session expires at `expires_at` and is revoked by sign-out or by
    `tandem admin revoke`, on every worker at once."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column()
    # Where the sign-in came from, for the list of sessions (`tandem admin sessions`).
    client: Mapped[str | None] = mapped_column(String(64))
