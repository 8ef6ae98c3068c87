"""turn tickets: client message ids as idempotency keys, pending turns, one open conversation per channel

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:20:00

Written by hand to match bot/storage/schema.py (`alembic check` finds no drift).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("client_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("pending_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_messages_conversation_client", "messages", ["conversation_id", "client_id"], unique=True)
    # Before the unique index: end every open conversation of a user and channel but the newest
    # (two first messages at once could open two before this migration).
    op.execute(sa.text(
        "UPDATE conversations SET ended_at = updated_at WHERE ended_at IS NULL AND EXISTS ("
        " SELECT 1 FROM conversations AS newer WHERE newer.user_id = conversations.user_id"
        " AND newer.channel = conversations.channel AND newer.ended_at IS NULL"
        " AND (newer.started_at > conversations.started_at"
        "      OR (newer.started_at = conversations.started_at AND newer.id > conversations.id)))"
    ))
    op.create_index("uq_conversations_open", "conversations", ["user_id", "channel"], unique=True,
                    sqlite_where=sa.text("ended_at IS NULL"), postgresql_where=sa.text("ended_at IS NULL"))


def downgrade() -> None:
    op.drop_index("uq_conversations_open", table_name="conversations")
    op.drop_index("uq_messages_conversation_client", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("pending_until")
        batch.drop_column("client_id")
