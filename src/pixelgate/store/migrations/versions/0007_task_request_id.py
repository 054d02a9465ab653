"""tasks.request_id: the request that made a task, for its log lines (X-Request-Id)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "request_id")
