"""stories: stories, their passage tree, lore entries and rolling summaries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:25:18

Written by hand to match bot/storage/schema.py (`alembic check` finds no drift).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("genre", sa.String(length=100), nullable=True),
        sa.Column("premise", sa.Text(), nullable=True),
        sa.Column("style", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("memory", sa.Text(), nullable=False),
        sa.Column("author_note", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("head_id", sa.Integer(), nullable=True),
        sa.Column("cursor", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_stories_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
    )
    op.create_index("ix_stories_user_updated", "stories", ["user_id", "updated_at"], unique=False)

    op.create_table(
        "passages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("candidate_group", sa.Integer(), nullable=True),
        sa.Column("chosen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("author IN ('user', 'model', 'edited')", name=op.f("ck_passages_author")),
        sa.CheckConstraint("status IN ('complete', 'incomplete')", name=op.f("ck_passages_status")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["passages.id"], name=op.f("fk_passages_parent_id_passages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name=op.f("fk_passages_story_id_stories"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passages")),
    )
    op.create_index("ix_passages_story_id_id", "passages", ["story_id", "id"], unique=False)

    op.create_table(
        "story_lore",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("keys", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name=op.f("fk_story_lore_story_id_stories"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_lore")),
    )
    op.create_index(op.f("ix_story_lore_story_id"), "story_lore", ["story_id"], unique=False)

    op.create_table(
        "story_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("through_id", sa.Integer(), nullable=False),
        sa.Column("covered", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name=op.f("fk_story_summaries_story_id_stories"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["through_id"], ["passages.id"], name=op.f("fk_story_summaries_through_id_passages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_summaries")),
    )
    op.create_index(
        "ix_story_summaries_story_through", "story_summaries", ["story_id", "through_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_story_summaries_story_through", table_name="story_summaries")
    op.drop_table("story_summaries")
    op.drop_index(op.f("ix_story_lore_story_id"), table_name="story_lore")
    op.drop_table("story_lore")
    op.drop_index("ix_passages_story_id_id", table_name="passages")
    op.drop_table("passages")
    op.drop_index("ix_stories_user_updated", table_name="stories")
    op.drop_table("stories")
