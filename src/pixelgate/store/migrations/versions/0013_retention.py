"""tasks.blobs_purged_at, leases: expired results deleted by one janitor across processes

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("blobs_purged_at", sa.Float, nullable=True))
    unpurged = sa.text("blobs_purged_at IS NULL")
    op.create_index(
        "ix_tasks_unpurged", "tasks", ["completed_at"], postgresql_where=unpurged, sqlite_where=unpurged
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_tasks_unpurged", "tasks")
    op.drop_column("tasks", "blobs_purged_at")
