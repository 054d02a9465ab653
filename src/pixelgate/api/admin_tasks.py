"""Every task, as the admin sees it (admin key): the list behind ``pixelgate tasks`` and the console.

GET  /admin/tasks                    newest first, ``limit`` (1-200, 50) a page, ``after`` the last_id of the
                                     page before; filters, all optional and combined: ``status`` (queued,
                                     running, succeeded, failed, cancelled; comma-separated for several),
                                     ``failed=true`` (the same as status=failed), ``model``, ``key_id``,
                                     ``owner``, ``dialect``, ``channel`` (the one that made the first image),
                                     ``since`` and ``until`` (when it was accepted: Unix seconds or ISO 8601;
                                     since included, until not)
GET  /admin/tasks/{task_id}          the row, with the request (secrets redacted: api/redaction.py; input
                                     images as their stored blob keys), its webhook, tokens, and signed URLs
                                     of its images
POST /admin/tasks/{task_id}/cancel   cancel anyone's queued or running task (409 once it has ended)

The JSON is the models below, which ``/openapi.json`` documents; fields are added, never renamed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from pixelgate.api.auth import admin_only, authenticate
from pixelgate.api.deps import ImageLinks, LinksDep, ServiceDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.paging import PageSize
from pixelgate.api.parsing import check_text, shown
from pixelgate.api.redaction import redact
from pixelgate.api.responses import list_page
from pixelgate.api.times import read_time
from pixelgate.core.errors import InvalidRequest, NotFound, one_of
from pixelgate.core.task import Status, Task
from pixelgate.store.schema import channel_controls, column_chars, tasks, usage
from pixelgate.tasks.listing import TaskFilters, TaskListing, TaskRow
from pixelgate.tasks.service import TaskService

router = APIRouter(
    prefix="/admin/tasks",
    dependencies=[Depends(openai_dialect), Depends(authenticate), Depends(admin_only)],
)
LIMIT = PageSize("limit", default=50, most=200)
STATUSES = tuple(status.value for status in Status)


class TaskError(BaseModel):
    code: str | None
    message: str | None


class AdminTask(BaseModel):
    """One task in the list. Times are Unix seconds; ``duration_seconds`` (to the millisecond) runs from
    acceptance to the end; ``billing`` is the ledger's state (reserved while it runs, settled with its cost
    when it succeeded, released at no cost when it failed or was cancelled); ``image_count`` counts the
    images it made; ``channel`` is the channel that made its first image (succeeded tasks only)."""

    id: str
    object: Literal["admin.task"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    model: str
    dialect: str
    key_id: str | None
    key_name: str | None
    owner: str | None
    channel: str | None
    batch_id: str | None
    n: int | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    duration_seconds: float | None
    billing: Literal["reserved", "settled", "released"] | None
    cost_usd: float | None
    image_count: int
    error: TaskError | None


class AdminTaskPage(BaseModel):
    object: Literal["list"]
    data: list[AdminTask]
    first_id: str | None
    last_id: str | None
    has_more: bool


class TaskImage(BaseModel):
    url: str | None  # None once the result expired
    mime_type: str
    width: int
    height: int
    revised_prompt: str | None


class TaskTokens(BaseModel):
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    total_tokens: int


class AdminTaskDetail(AdminTask):
    """A task whole: its row, the request as stored (secrets redacted), and what it made."""

    request: dict[str, Any]
    webhook: dict[str, Any] | None
    request_id: str | None
    priority: int
    attempts: int
    progress: int
    expires_at: float | None
    result_expired: bool
    tokens: TaskTokens | None
    text: str | None
    images: list[TaskImage]


async def _listing(service: ServiceDep) -> TaskListing:
    return TaskListing(service.queue.db)


ListingDep = Annotated[TaskListing, Depends(_listing)]


@router.get("", response_model=AdminTaskPage)
async def list_tasks(
    listing: ListingDep,
    status: str | None = None,
    failed: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
    owner: str | None = None,
    dialect: str | None = None,
    channel: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """Every task, newest first, a page at a time; each filter given narrows the list."""
    filters = TaskFilters(
        statuses=_statuses(status, failed),
        model=_text(model, "model", column_chars(tasks.c.model)),
        key_id=_text(key_id, "key_id", column_chars(usage.c.key_id)),
        owner=_text(owner, "owner", column_chars(tasks.c.owner)),
        dialect=_text(dialect, "dialect", column_chars(tasks.c.dialect)),
        channel=_text(channel, "channel", column_chars(channel_controls.c.name)),
        since=read_time(since, "since"),
        until=read_time(until, "until"),
    )
    rows, has_more = await listing.page(filters, limit=LIMIT.read(limit), after=after or None)
    return list_page([row.describe() for row in rows], has_more)


@router.get("/{task_id}", response_model=AdminTaskDetail)
async def get_task(
    task_id: str, request: Request, service: ServiceDep, listing: ListingDep, links: LinksDep
) -> dict[str, Any]:
    """One task whole: the request (secrets redacted), its webhook, tokens and signed image URLs."""
    return await _detail(task_id, request, service, listing, links)


@router.post("/{task_id}/cancel", response_model=AdminTaskDetail)
async def cancel_task(
    task_id: str, request: Request, service: ServiceDep, listing: ListingDep, links: LinksDep
) -> dict[str, Any]:
    """Cancel a queued or running task, whoever's it is; a 409 once it has ended."""
    await service.cancel(task_id)
    return await _detail(task_id, request, service, listing, links)


async def _detail(
    task_id: str, request: Request, service: TaskService, listing: TaskListing, links: ImageLinks
) -> dict[str, Any]:
    task = await service.get(task_id)  # a 404 for an id no task has
    row = await listing.row(task_id)
    if row is None:  # deleted in between
        raise NotFound(f"no task has the id {task_id!r}", param="task_id", code="task_not_found")
    return await describe_task(request, links, task, row)


async def describe_task(request: Request, links: ImageLinks, task: Task, row: TaskRow) -> dict[str, Any]:
    result = task.result
    live = task.status is Status.SUCCEEDED and result is not None and not task.result_expired()
    usage_made = result.usage if result is not None else None
    webhook = redact(task.callback.to_record()) if task.callback is not None else None  # URLs too
    return {
        **row.describe(),
        "request": redact(task.request.model_dump(mode="json")),
        "webhook": webhook,
        "request_id": task.request_id,
        "priority": task.priority,
        "attempts": task.attempts,
        "progress": task.progress,
        "expires_at": task.expires_at,
        "result_expired": task.status is Status.SUCCEEDED and task.result_expired(),
        "tokens": (
            {
                "input_tokens": usage_made.input_tokens,
                "output_tokens": usage_made.output_tokens,
                "thought_tokens": usage_made.thought_tokens,
                "total_tokens": usage_made.total_tokens,
            }
            if usage_made is not None
            else None
        ),
        "text": result.text if result is not None else None,
        "images": [
            {
                "url": await links.image_url(request, task, image) if live else None,
                "mime_type": image.mime_type,
                "width": image.width,
                "height": image.height,
                "revised_prompt": image.revised_prompt,
            }
            for image in (result.images if result is not None else ())
        ],
    }


def _statuses(status: str | None, failed: str | None) -> tuple[Status, ...]:
    chosen: list[Status] = []
    for name in (status or "").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in STATUSES:
            raise InvalidRequest(
                f"status {shown(name)} is not a task status: use {one_of(STATUSES)} (comma-separated for "
                "several)",
                param="status",
                code="invalid_status",
            )
        chosen.append(Status(name))
    if failed is None or failed.strip().lower() in ("", "false", "0"):
        return tuple(dict.fromkeys(chosen))
    if failed.strip().lower() not in ("true", "1"):
        raise InvalidRequest(
            f"failed {shown(failed)} is not valid: use true (the same as status=failed) or leave it out",
            param="failed",
            code="invalid_flag",
        )
    if chosen and chosen != [Status.FAILED]:
        raise InvalidRequest(
            f"failed=true and status {shown(status)} contradict each other: give one of them",
            param="failed",
            code="conflicting_filters",
        )
    return (Status.FAILED,)


def _text(value: str | None, field: str, max_chars: int) -> str | None:
    if value is None or value == "":
        return None
    return check_text(value, field, max_chars=max_chars)
