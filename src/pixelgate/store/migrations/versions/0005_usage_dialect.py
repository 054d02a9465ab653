"""usage.dialect: which API a task came in through (openai, tasks, gemini, interactions)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage", sa.Column("dialect", sa.String(32), nullable=True))
    # Rows made before this column: their task, where it is still kept, knows its dialect.
    op.execute(
        "UPDATE usage SET dialect = (SELECT tasks.dialect FROM tasks WHERE tasks.id = usage.task_id) "
        "WHERE dialect IS NULL"
    )


def downgrade() -> None:
    op.drop_column("usage", "dialect")
