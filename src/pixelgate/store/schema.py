"""The current database schema, as SQLAlchemy Core tables (the queries use these; the migrations under
``migrations/versions`` build them, step by step, on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("dialect", sa.String(32), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("response_format", sa.String(16), nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("worker_id", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    # {image index: {"channel": …, "task": …}}: upstream tasks in flight, resumed after a restart
    sa.Column("upstream", sa.JSON, nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),  # X-Request-Id of the request that made it
    sa.Index("ix_tasks_owner_created", "owner", "created_at"),
    sa.Index("ix_tasks_lease", "status", "lease_expires_at"),
)
# In the claim's order (highest priority, then oldest), so that a claim reads only the rows it takes.
sa.Index("ix_tasks_claim", tasks.c.status, tasks.c.priority.desc(), tasks.c.created_at)

# An Idempotency-Key (per owner: "scope") and the task its first request made (see tasks/idempotency.py).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(160), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_idempotency_created", "created_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # public: the part of the key before its secret
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(128), nullable=False),  # HMAC-SHA256(salt, secret); the secret is not kept
    sa.Column("models", sa.JSON, nullable=True),  # the models it may use; None: all
    sa.Column("limits", sa.JSON, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("disabled_at", sa.Float, nullable=True),
    sa.Column("last_used_at", sa.Float, nullable=True),  # also the row every reservation locks first
    sa.Index("ix_api_keys_owner", "owner"),
)

# The ledger: one row per task. "reserved" while it is queued or running (its cost estimated), then
# "settled" with what it made (succeeded) or "released" at no cost (failed, cancelled). Totals are sums
# of settled rows; rows outlive their tasks (an interaction deleted after it was answered was still made).
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("dialect", sa.String(32), nullable=True),  # None: made before 0.1's migration 0005
    sa.Column("day", sa.String(10), nullable=False),  # UTC date the task was accepted, YYYY-MM-DD
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("images", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("total_tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("settled_at", sa.Float, nullable=True),
    sa.Index("ix_usage_key_state", "key_id", "state"),
    sa.Index("ix_usage_owner_day", "owner", "day"),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
