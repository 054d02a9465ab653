"""The current database schema, as SQLAlchemy Core tables (the queries use these; the migrations under
``migrations/versions`` build them, step by step, on SQLite and PostgreSQL alike)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


def column_chars(column: sa.Column[Any]) -> int:
    """How many characters a ``String(n)`` column holds: what a value bound for it is checked against, read
    from here so that the check cannot drift from the column."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), column
    return length


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
    sa.Column("batch_id", sa.String(64), nullable=True),  # the batch whose line it runs (lower priority)
    # The request's own webhook: {"urls": [...], "user_metadata": {...}} (see tasks/webhooks.py)
    sa.Column("webhook", sa.JSON, nullable=True),
    # Until when it may wait in the queue for a channel (None: a caller waits on it, so it never does), and
    # the time before which it is not claimed (it went back to the queue until a channel is ready).
    sa.Column("deadline_at", sa.Float, nullable=True),
    sa.Column("not_before", sa.Float, nullable=True),
    # When the retention janitor deleted its images (tasks/janitor.py): the row stays, its result expired.
    sa.Column("blobs_purged_at", sa.Float, nullable=True),
    sa.Index("ix_tasks_owner_created", "owner", "created_at"),
    sa.Index("ix_tasks_batch", "batch_id", "status"),
    sa.Index("ix_tasks_lease", "status", "lease_expires_at"),
    sa.Index("ix_tasks_created", "created_at", "id"),  # the admin's list, newest first (api/admin_tasks.py)
)
# In the claim's order (highest priority, then oldest), so that a claim reads only the rows it takes.
sa.Index("ix_tasks_claim", tasks.c.status, tasks.c.priority.desc(), tasks.c.created_at)

# The upstream's thought signature of each output image that had one, by the image's SHA-256: a client
# whose wire format cannot carry signatures (chat completions) sends the image back, and the signature is
# found again by its bytes (see tasks/submission.py). Rows go with their task.
output_signatures = sa.Table(
    "output_signatures",
    metadata,
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_output_signatures_sha256", "sha256"),
    sa.Index("ix_output_signatures_task", "task_id"),
)

# The janitor's work list: ended tasks whose images are still stored, oldest first.
_unpurged = tasks.c.blobs_purged_at.is_(None)
sa.Index("ix_tasks_unpurged", tasks.c.completed_at, postgresql_where=_unpurged, sqlite_where=_unpurged)

# A named lease that one process holds at a time, across hosts (store/leases.py): the retention janitor's.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

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

# Uploaded files (a batch's input, OpenAI's /v1/files and Gemini's /upload/{v}/files) and the files a
# batch writes (its results). The bytes are a blob; ``state`` is "uploading" until a resumable upload ends.
files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("mime_type", sa.String(128), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("expected_bytes", sa.BigInteger, nullable=True),  # a resumable upload's announced size
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Index("ix_files_owner_created", "owner", "created_at"),
)

# A batch job: its lines run as tasks of lower priority (tasks.batch_id), a window of them at a time, by
# whichever process holds the batch's lease (see tasks/batches.py).
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("key_id", sa.String(32), nullable=True),  # whose limits and prices its lines run under
    sa.Column("dialect", sa.String(16), nullable=False),  # "openai" or "gemini": how lines read and answer
    sa.Column("endpoint", sa.String(64), nullable=False),  # OpenAI's endpoint, or the Gemini model
    sa.Column("display_name", sa.String(512), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("input_file_id", sa.String(64), nullable=True),  # None: Gemini's inline requests
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("submitted", sa.Integer, nullable=False),  # lines 0 … submitted-1 have a task or an error
    sa.Column("output_file_id", sa.String(64), nullable=True),
    sa.Column("error_file_id", sa.String(64), nullable=True),
    sa.Column("options", sa.JSON, nullable=True),  # metadata, base URL, webhook: what the dialect keeps
    sa.Column("errors", sa.JSON, nullable=True),  # why the whole batch failed
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("in_progress_at", sa.Float, nullable=True),
    sa.Column("finalizing_at", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("cancelling_at", sa.Float, nullable=True),
    sa.Column("runner_id", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Index("ix_batches_owner_created", "owner", "created_at"),
    sa.Index("ix_batches_state", "state"),
)

batch_lines = sa.Table(
    "batch_lines",
    metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("line", sa.Integer, primary_key=True),
    sa.Column("custom_id", sa.String(512), nullable=True),  # OpenAI's custom_id, Gemini's key or metadata
    sa.Column("body", sa.JSON, nullable=False),  # the request as the line gave it
    sa.Column("error", sa.JSON, nullable=True),  # why it never became a task (refused, cancelled, expired)
)

# Webhooks an owner registered (Gemini's ``/v1beta/webhooks`` resource): they get that owner's events.
# ``secrets`` is a list of {"secret", "created_at", "expires_at"}: a rotated-out secret keeps signing (beside
# the new one) until it expires, so receivers can switch without missing a delivery.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("name", sa.String(512), nullable=True),
    sa.Column("uri", sa.String(2048), nullable=False),
    sa.Column("subscribed_events", sa.JSON, nullable=False),
    sa.Column("state", sa.String(40), nullable=False),
    sa.Column("secrets", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_webhooks_owner_created", "owner", "created_at"),
)

# The signing secret of an owner's per-request webhooks (callback_url, webhook_config.uris); ``scope`` is
# the owner, or "-" for callers without one.
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column("scope", sa.String(160), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# The outbox: one row per event and URL, written in the transaction that ended the task (or batch), sent
# and retried by the webhook sender of any process (claimed with a lease, like tasks). ``payload`` is the
# exact body that is signed and sent, the same on every attempt.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("webhook_id", sa.String(64), nullable=True),  # None: the request's own URL
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
    sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_owner_created", "owner", "created_at"),
    sa.Index("ix_webhook_deliveries_subject", "subject_id"),
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
    # The tokens by modality, as Gemini's usageMetadata splits them and as they are priced (0001-0013 rows
    # whose task was gone by 0014 have only the totals above).
    sa.Column("input_text_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("input_image_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("output_text_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("output_image_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("thought_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Index("ix_usage_key_state", "key_id", "state"),
    sa.Index("ix_usage_owner_day", "owner", "day"),
    sa.Index("ix_usage_created", "created_at"),  # the admin's usage series (auth/usage_series.py)
)

# The admin's hand on the channels, shared by every process (see routing/controls.py): one row per channel
# name, made the first time one is disabled, enabled or reset.
channel_controls = sa.Table(
    "channel_controls",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("disabled_at", sa.Float, nullable=True),
    sa.Column("disabled_reason", sa.String(512), nullable=True),
    sa.Column("resets", sa.Integer, nullable=False),  # how many times it was reset: each is applied once
    sa.Column("updated_at", sa.Float, nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
