"""webhooks, webhook_secrets, webhook_deliveries, tasks.webhook: signed webhook deliveries from an outbox

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("webhook", sa.JSON, nullable=True))
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("subscribed_events", sa.JSON, nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_webhooks_owner_created", "webhooks", ["owner", "created_at"])
    op.create_table(
        "webhook_secrets",
        sa.Column("scope", sa.String(160), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("webhook_id", sa.String(64), nullable=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_owner_created", "webhook_deliveries", ["owner", "created_at"])
    op.create_index("ix_webhook_deliveries_subject", "webhook_deliveries", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_subject", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_owner_created", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_secrets")
    op.drop_index("ix_webhooks_owner_created", "webhooks")
    op.drop_table("webhooks")
    op.drop_column("tasks", "webhook")
