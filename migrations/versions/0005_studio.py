"""writing studio: a writer's thumb on a passage (`passages.rating`) and lore entries that can be switched off (`story_lore.enabled`)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:30:00

Written by hand to match bot/storage/schema.py (`alembic check` finds no drift).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("passages") as batch:
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch.create_check_constraint(op.f("ck_passages_rating"), "rating IN (-1, 1)")
    with op.batch_alter_table("story_lore") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("story_lore") as batch:
        batch.drop_column("enabled")
    with op.batch_alter_table("passages") as batch:
        batch.drop_constraint(op.f("ck_passages_rating"), type_="check")
        batch.drop_column("rating")
