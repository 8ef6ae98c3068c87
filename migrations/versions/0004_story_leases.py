"""story leases: one process at a time acts on a story (`stories.lease_holder`, `stories.lease_until`)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:10:00

Written by hand to match bot/storage/schema.py (`alembic check` finds no drift).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("lease_holder", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_holder")
