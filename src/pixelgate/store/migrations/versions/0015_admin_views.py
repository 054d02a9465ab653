"""tasks and usage by time: the admin's task list (newest first) and usage series read them in that order

Without them, ``GET /admin/tasks`` sorted every task on each page and ``GET /admin/usage/series`` read the
whole ledger for a week's chart.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_created", "tasks", ["created_at", "id"])
    op.create_index("ix_usage_created", "usage", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_created", "usage")
    op.drop_index("ix_tasks_created", "tasks")
