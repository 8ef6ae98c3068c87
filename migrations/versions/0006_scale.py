"""data at scale: 64-bit row ids, indexes for the dashboard's windows and for every foreign key, and admin sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:00:00

Written by hand to match bot/storage/schema.py (`alembic check` finds no drift).

SQLite's INTEGER is already 64-bit, so the id columns change on PostgreSQL only (the identity
sequences too: a SERIAL's sequence is `AS integer` and would stop at 2**31 - 1 on its own).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Every column that holds a row id, by table; the primary keys' sequences are widened with them.
ID_COLUMNS = {
    "users": ["id"],
    "conversations": ["user_id"],
    "messages": ["id", "parent_id"],
    "feedback": ["id", "message_id", "user_id"],
    "feedback_offers": ["id"],
    "dialog_states": ["last_message_id"],
    "stories": ["id", "user_id", "head_id"],
    "passages": ["id", "story_id", "parent_id", "candidate_group", "source_id"],
    "story_lore": ["id", "story_id"],
    "story_summaries": ["id", "story_id", "through_id"],
}
INDEXES = [
    ("ix_conversations_started_at", "conversations", ["started_at"]),
    ("ix_messages_created_at", "messages", ["created_at"]),
    ("ix_messages_author_created_at", "messages", ["author", "created_at"]),
    ("ix_messages_parent_id", "messages", ["parent_id"]),
    ("ix_feedback_message_id", "feedback", ["message_id"]),
    ("ix_feedback_user_id", "feedback", ["user_id"]),
    ("ix_feedback_created_at", "feedback", ["created_at"]),
    ("ix_passages_parent_id", "passages", ["parent_id"]),
    ("ix_story_summaries_through_id", "story_summaries", ["through_id"]),
    ("ix_users_channel_last_seen", "users", ["channel", "last_seen_at"]),
]


def _widen(to: type[sa.types.TypeEngine], sequence_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in ID_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=to())
        if "id" in columns:
            op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS {sequence_type}")


def upgrade() -> None:
    _widen(sa.BigInteger, "bigint")
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
    )
    op.create_index(op.f("ix_admin_sessions_expires_at"), "admin_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_sessions_expires_at"), table_name="admin_sessions")
    op.drop_table("admin_sessions")
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    _widen(sa.Integer, "integer")
