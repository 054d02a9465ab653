"""output_signatures: the thought signature of each signed output image, found again by the image's hash

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_signatures",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_output_signatures_sha256", "output_signatures", ["sha256"])
    op.create_index("ix_output_signatures_task", "output_signatures", ["task_id"])


def downgrade() -> None:
    op.drop_table("output_signatures")
