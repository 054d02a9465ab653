"""tasks.upstream: where each image's upstream task is, so that a restart resumes it

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("upstream", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "upstream")
