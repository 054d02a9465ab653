"""What the routers share: the running gateway's parts, and how a stored image becomes a signed URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from pixelgate.api.responses import Base64File
from pixelgate.auth.guard import FailureGuard, LocalFailureGuard
from pixelgate.auth.keys import KeyStore
from pixelgate.auth.ledger import Ledger
from pixelgate.catalog import Catalog
from pixelgate.config import Settings
from pixelgate.core.task import GeneratedImage, Task
from pixelgate.routing import ChannelControls
from pixelgate.store.blobs import BlobStore, UrlSigner
from pixelgate.store.files import FileStore
from pixelgate.tasks.batches import BatchStore
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.webhook_registry import WebhookRegistry
from pixelgate.tasks.worker import Worker


@dataclass
class Gateway:
    settings: Settings
    catalog: Catalog
    service: TaskService
    blobs: BlobStore
    signer: UrlSigner
    keys: KeyStore
    webhooks: WebhookRegistry
    auth_enabled: bool
    files: FileStore
    batches: BatchStore
    controls: ChannelControls
    ledger: Ledger
    worker: Worker | None  # None: this process runs no worker (--no-workers)
    failures: FailureGuard = field(default_factory=LocalFailureGuard)

    def base_url(self, request: Request) -> str:
        """Where this server is reached: the configured public URL, else the one the request came to."""
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

    def image_url(self, request: Request | str, task: Task, image: GeneratedImage) -> str:
        """A signed URL of a task's image; ``request`` is the request being answered, or the base URL
        that a batch saved when it was made (its results are written with no request at hand)."""
        base = request.rstrip("/") if isinstance(request, str) else self.base_url(request)
        # A URL expires with the task's result, so that every poll of a task hands out the same URL.
        expires = int(task.expires_at or task.created_at + self.settings.result_ttl_seconds)
        return f"{base}/blobs/{image.blob_key}?{self.signer.query(image.blob_key, expires)}"

    async def image_base64(self, image: GeneratedImage) -> Base64File:
        return await self.blob_base64(image.blob_key)

    async def blob_base64(self, key: str) -> Base64File:
        """A stored image as a base64 string of an answer, read from its file as the answer is sent."""
        return Base64File(*await self.blobs.open(key))


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


GatewayDep = Annotated[Gateway, Depends(gateway)]
