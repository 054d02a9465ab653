"""usage: tokens by modality (input text and images, output text and images, thoughts), as billed

Revision ID: 0014
Revises: 0013

Rows settled before this revision get theirs from their task's result, where the task is still kept; a row
whose task is gone keeps only its totals (its split columns stay 0).
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MODALITIES = (
    "input_text_tokens",
    "input_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
    "thought_tokens",
)


def upgrade() -> None:
    for name in MODALITIES:
        op.add_column("usage", sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0")))
    usage = sa.table("usage", sa.column("task_id", sa.String), sa.column("state", sa.String))
    tasks = sa.table("tasks", sa.column("id", sa.String), sa.column("result", sa.JSON))
    settled = sa.select(usage.c.task_id, tasks.c.result).join(tasks, tasks.c.id == usage.c.task_id)
    bind = op.get_bind()
    splits = []
    for task_id, result in bind.execute(settled.where(usage.c.state == "settled")).all():
        record = json.loads(result) if isinstance(result, str) else result
        made = (record or {}).get("usage") or {}
        splits.append({"id": task_id, **{name: int(made.get(name) or 0) for name in MODALITIES}})
    if splits:
        update = sa.table(
            "usage", sa.column("task_id", sa.String), *(sa.column(m, sa.Integer) for m in MODALITIES)
        )
        bind.execute(
            update.update()
            .where(update.c.task_id == sa.bindparam("id"))
            .values({name: sa.bindparam(name) for name in MODALITIES}),
            splits,
        )


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        for name in reversed(MODALITIES):
            batch.drop_column(name)
