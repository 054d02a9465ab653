"""What a handler may ask for: each part of the running server as its own FastAPI dependency.

``runtime.py`` builds the parts once and hands them to the app as one frozen :class:`Parts`; a handler
names only the parts it uses (``service: ServiceDep, links: LinksDep``), so its signature says what it
touches and a test can see which parts a route needs. :class:`ImageLinks` is how a stored image reaches
an answer: a URL (pixelgate's own signed one, or the bucket's presigned one), or its bytes as base64 read
from the blob store as the answer is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from pixelgate.api.responses import Base64File
from pixelgate.auth.guard import FailureGuard
from pixelgate.auth.keys import KeyStore
from pixelgate.auth.ledger import Ledger
from pixelgate.catalog import Catalog
from pixelgate.config import Settings
from pixelgate.core.task import GeneratedImage, Task
from pixelgate.routing import ChannelControls
from pixelgate.store.blobs import BlobStore, Presigner, UrlSigner
from pixelgate.store.files import FileStore
from pixelgate.tasks.batches import BatchStore
from pixelgate.tasks.idempotency import IdempotencyKeys
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.webhook_registry import WebhookRegistry
from pixelgate.tasks.worker import Worker


@dataclass(frozen=True)
class ImageLinks:
    public_url: str | None  # where this server is reached, when it sits behind a proxy
    result_ttl_seconds: float
    signer: UrlSigner
    blobs: BlobStore
    # The bucket's own URLs (--blob-urls presigned): image bytes then never pass through pixelgate. None:
    # pixelgate's signed URLs, whose bytes it streams from the store.
    presigner: Presigner | None = None

    def base_url(self, request: Request) -> str:
        """Where this server is reached: the configured public URL, else the one the request came to."""
        return (self.public_url or str(request.base_url)).rstrip("/")

    async def image_url(self, request: Request | str, task: Task, image: GeneratedImage) -> str:
        """A signed URL of a task's image; ``request`` is the request being answered, or the base URL
        that a batch saved when it was made (its results are written with no request at hand). This is
        the one place image URLs are made."""
        # A URL expires with the task's result, so that every poll of a task hands out the same URL (a
        # presigned one is signed anew each time, but expires at the same moment).
        expires = int(task.expires_at or task.created_at + self.result_ttl_seconds)
        if self.presigner is not None:
            return await self.presigner.presign_get(image.blob_key, expires)
        base = request.rstrip("/") if isinstance(request, str) else self.base_url(request)
        return f"{base}/blobs/{image.blob_key}?{self.signer.query(image.blob_key, expires)}"

    async def image_base64(self, image: GeneratedImage) -> Base64File:
        return await self.blob_base64(image.blob_key)

    async def image_data_uri(self, image: GeneratedImage) -> Base64File:
        """A stored image as a ``data:`` URI (chat completions carry images so)."""
        return Base64File(await self.blobs.open(image.blob_key), prefix=f"data:{image.mime_type};base64,")

    async def blob_base64(self, key: str) -> Base64File:
        """A stored image as a base64 string of an answer, read from the store as the answer is sent."""
        return Base64File(await self.blobs.open(key))


@dataclass(frozen=True)
class Parts:
    settings: Settings
    catalog: Catalog
    service: TaskService
    links: ImageLinks
    keys: KeyStore
    webhooks: WebhookRegistry
    files: FileStore
    batches: BatchStore
    controls: ChannelControls
    ledger: Ledger
    idempotency: IdempotencyKeys
    failures: FailureGuard
    worker: Worker | None  # None: this process runs no worker (--no-workers)
    auth_enabled: bool


T = TypeVar("T")


def _part(read: Callable[[Parts], T]) -> Callable[[Request], Awaitable[T]]:
    # A coroutine, though it awaits nothing: FastAPI runs a plain function dependency in its thread pool,
    # which cost every request a thread hop per part it named (six for an image request).
    async def dependency(request: Request) -> T:
        parts: Parts = request.app.state.parts
        return read(parts)

    return dependency


SettingsDep = Annotated[Settings, Depends(_part(lambda p: p.settings))]
CatalogDep = Annotated[Catalog, Depends(_part(lambda p: p.catalog))]
ServiceDep = Annotated[TaskService, Depends(_part(lambda p: p.service))]
LinksDep = Annotated[ImageLinks, Depends(_part(lambda p: p.links))]
KeysDep = Annotated[KeyStore, Depends(_part(lambda p: p.keys))]
WebhooksDep = Annotated[WebhookRegistry, Depends(_part(lambda p: p.webhooks))]
FilesDep = Annotated[FileStore, Depends(_part(lambda p: p.files))]
BatchesDep = Annotated[BatchStore, Depends(_part(lambda p: p.batches))]
ControlsDep = Annotated[ChannelControls, Depends(_part(lambda p: p.controls))]
LedgerDep = Annotated[Ledger, Depends(_part(lambda p: p.ledger))]
IdempotencyDep = Annotated[IdempotencyKeys, Depends(_part(lambda p: p.idempotency))]
FailuresDep = Annotated[FailureGuard, Depends(_part(lambda p: p.failures))]
AuthEnabledDep = Annotated[bool, Depends(_part(lambda p: p.auth_enabled))]
WorkerDep = Annotated[Worker | None, Depends(_part(lambda p: p.worker))]
