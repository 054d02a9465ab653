"""channel_controls, tasks.deadline_at, tasks.not_before: channels the admin steers, tasks that wait for one

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("deadline_at", sa.Float, nullable=True))
    op.add_column("tasks", sa.Column("not_before", sa.Float, nullable=True))
    op.create_table(
        "channel_controls",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("disabled_at", sa.Float, nullable=True),
        sa.Column("disabled_reason", sa.String(512), nullable=True),
        sa.Column("resets", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_controls")
    op.drop_column("tasks", "not_before")
    op.drop_column("tasks", "deadline_at")
