"""Blobs as objects of an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, moto), through aiobotocore.

``s3://bucket/prefix`` keeps ``task_img_…/out-0.png`` as the object ``prefix/task_img_…/out-0.png``. Large
puts and pieced writes go up as multipart uploads (``PART_BYTES`` parts); copies stay inside the store
(CopyObject); a blob opened for an answer is a HeadObject (its size, its ETag) whose GetObject is sent only
when the answer streams it, piece by piece, so that an answer with ten images holds one connection at a
time, not ten. The clients it is given, and the check a server makes before it starts, are
``s3_connect.py``'s.

Every failure of the service becomes pixelgate's through one place, :meth:`S3BlobStore._answers`: a missing
object is ``NotFound``; anything else (unreachable, refused, a bucket gone) is ``StorageUnavailable``.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from pixelgate.core.errors import NotFound, StorageUnavailable
from pixelgate.store.blob_location import MAX_PRESIGN_SECONDS, S3Location
from pixelgate.store.blobs import KEY, StoredBlob, checked_key, checked_prefix, content_type, gone

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

PART_BYTES = 8 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
READ_BYTES = 1024 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412"}  # replaced between its HeadObject and its GetObject


class S3BlobStore:
    def __init__(
        self,
        client: S3Client,
        location: S3Location,
        *,
        streams: S3Client | None = None,
        endpoint_url: str | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        """``streams``: the client whose connections answers hold while they stream at their callers'
        pace, so that slow downloads never take the connections the worker stores its images with."""
        self.client = client
        self.streams = streams or client
        self.location = location
        self.bucket = location.bucket
        self.root = f"{location.prefix}/" if location.prefix else ""
        self.endpoint_url = endpoint_url
        self.description = f"{location} at {endpoint_url}" if endpoint_url else str(location)
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)

    def _object(self, key: str) -> str:
        return self.root + checked_key(key)

    @contextmanager
    def _answers(self, doing: str, key: str) -> Iterator[None]:
        """The service's failures as pixelgate's own errors."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING:
                raise gone(key) from None
            if code in _CHANGED:
                raise NotFound(
                    f"the stored image {key!r} was replaced while it was read", code="image_not_found"
                ) from None
            raise self._unavailable(doing, key, f"{code}: {error.get('Message') or exc}") from None
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:  # OSError: TimeoutError too
            raise self._unavailable(doing, key, str(exc) or type(exc).__name__) from None

    def _unavailable(self, doing: str, key: str, why: str) -> StorageUnavailable:
        return StorageUnavailable(
            f"the blob store {self.description} failed to {doing} {key!r} ({why}): try again once it answers",
            retry_after=5,
        )

    async def put(self, key: str, data: bytes) -> None:
        name = self._object(key)
        with self._answers("store", key):
            if len(data) <= self.part_bytes:
                await self.client.put_object(
                    Bucket=self.bucket, Key=name, Body=data, ContentType=content_type(key)
                )
                return
            async with self._upload(name, key) as upload:
                for start in range(0, len(data), self.part_bytes):
                    await upload.send(data[start : start + self.part_bytes])  # one part's copy at a time

    async def get(self, key: str) -> bytes:
        with self._answers("read", key):
            answer = await self.client.get_object(Bucket=self.bucket, Key=self._object(key))
            return await read_body(answer["Body"])

    async def open(self, key: str) -> ObjectReader:
        name = self._object(key)
        with self._answers("read", key):
            head = await self.client.head_object(Bucket=self.bucket, Key=name)
        return ObjectReader(self, name, key, head["ContentLength"], head["ETag"])

    async def copy(self, source: str, target: str) -> None:
        with self._answers("copy", source):
            await self.client.copy_object(
                Bucket=self.bucket,
                Key=self._object(target),
                CopySource={"Bucket": self.bucket, "Key": self._object(source)},
            )

    async def append(self, key: str, data: bytes) -> None:
        """S3 has no append: a blob of 5 MiB or more becomes the first part of a multipart upload, copied
        inside the store (UploadPartCopy, up to 5 GiB), with ``data`` as the second; a smaller one is read
        back and written again whole."""
        name = self._object(key)
        with self._answers("append to", key):
            size = (await self.client.head_object(Bucket=self.bucket, Key=name))["ContentLength"]
            if not data:
                return
            if size < MIN_PART_BYTES:
                answer = await self.client.get_object(Bucket=self.bucket, Key=name)
                await self.put(key, await read_body(answer["Body"]) + data)
                return
            async with self._upload(name, key) as upload:
                await upload.copy(name)
                await upload.send(data)

    @asynccontextmanager
    async def writing(self, key: str) -> AsyncIterator[ObjectWriter]:
        writer = ObjectWriter(self, self._object(key), key)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            await writer.abandon()
            raise

    @asynccontextmanager
    async def _upload(self, name: str, key: str) -> AsyncIterator[_Upload]:
        """A multipart upload, completed if the block succeeds and aborted if not (no parts are left
        behind to be paid for)."""
        upload = _Upload(self.client, self.bucket, name, content_type(key))
        try:
            yield upload
            await upload.complete()
        except BaseException:
            await upload.abort()
            raise

    async def delete_prefix(self, prefix: str) -> None:
        """ListObjectsV2 and DeleteObjects, a page (at most 1000 keys, DeleteObjects' limit) at a time."""
        within = f"{self.root}{checked_prefix(prefix)}/"
        with self._answers("delete the blobs of", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=within, PaginationConfig={"PageSize": 1000}
            )
            async for page in pages:
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not objects:
                    continue
                answer = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                if failed := answer.get("Errors"):
                    first = failed[0]
                    raise self._unavailable(
                        "delete", str(first.get("Key")), f"{first.get('Code')}: {first.get('Message')}"
                    )

    async def listing(self, prefix: str = "") -> AsyncIterator[StoredBlob]:
        with self._answers("list", prefix or "its blobs"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.root + prefix
            )
            async for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self.root)
                    if KEY.match(key):  # not a probe's object, nor another program's
                        yield StoredBlob(key, item["Size"], item["LastModified"].timestamp())

    async def presign_get(self, key: str, expires_at: float) -> str:
        """A GET URL of the object, valid until ``expires_at`` (within SigV4's 7 days)."""
        # From the whole second the URL is signed at (X-Amz-Date), so that it lapses at expires_at.
        seconds = min(MAX_PRESIGN_SECONDS, max(1, int(expires_at) - int(time.time())))
        with self._answers("sign a URL of", key):
            return await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._object(key)}, ExpiresIn=seconds
            )


class ObjectReader:
    """An object whose size is known (its HeadObject) and whose bytes are asked for when read; If-Match
    keeps them the bytes of that size."""

    def __init__(self, store: S3BlobStore, name: str, key: str, size: int, etag: str) -> None:
        self.store = store
        self.name = name
        self.key = key
        self.size = size
        self.etag = etag

    async def _body(self, start: int, stop: int) -> StreamingBody:
        streams, bucket = self.store.streams, self.store.bucket
        if (start, stop) == (0, self.size):
            answer = await streams.get_object(Bucket=bucket, Key=self.name, IfMatch=self.etag)
        else:
            answer = await streams.get_object(
                Bucket=bucket, Key=self.name, IfMatch=self.etag, Range=f"bytes={start}-{stop - 1}"
            )
        return answer["Body"]

    async def chunks(self, piece_bytes: int, start: int = 0, stop: int | None = None) -> AsyncIterator[bytes]:
        stop = self.size if stop is None else stop
        if start >= stop:
            return
        with self.store._answers("read", self.key):
            body = await self._body(start, stop)
            try:
                pending = bytearray()  # at most a piece and one read
                while chunk := await body.read(READ_BYTES):
                    pending += chunk
                    while len(pending) >= piece_bytes:
                        yield bytes(pending[:piece_bytes])
                        del pending[:piece_bytes]
                if pending:
                    yield bytes(pending)
            finally:
                body.close()

    async def read_all(self) -> bytes:
        with self.store._answers("read", self.key):
            return await read_body(await self._body(0, self.size))

    async def aclose(self) -> None:
        pass  # nothing is asked of the store until the bytes are read


class ObjectWriter:
    """Bytes gathered into parts; the first full part starts a multipart upload, and a blob that never
    fills one is a single PutObject."""

    def __init__(self, store: S3BlobStore, name: str, key: str) -> None:
        self.store = store
        self.name = name
        self.key = key
        self.size = 0
        self._pending = bytearray()
        self._upload: _Upload | None = None

    async def write(self, data: bytes) -> None:
        self._pending += data
        self.size += len(data)
        if len(self._pending) >= self.store.part_bytes:
            await self._send_part()

    async def _send_part(self) -> None:
        store = self.store
        with store._answers("store", self.key):
            if self._upload is None:
                self._upload = _Upload(store.client, store.bucket, self.name, content_type(self.key))
            await self._upload.send(bytes(self._pending))
        self._pending.clear()

    async def finish(self) -> None:
        if self._upload is None:
            await self.store.put(self.key, bytes(self._pending))
            return
        if self._pending:
            await self._send_part()
        with self.store._answers("store", self.key):
            await self._upload.complete()

    async def abandon(self) -> None:
        if self._upload is not None:
            await self._upload.abort()


class _Upload:
    """One multipart upload: started with its first part, its parts sent in order, then completed."""

    def __init__(self, client: S3Client, bucket: str, name: str, mime_type: str) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.mime_type = mime_type
        self.upload_id: str | None = None
        self.parts: list[Any] = []

    async def _started(self) -> str:
        if self.upload_id is None:
            answer = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.name, ContentType=self.mime_type
            )
            self.upload_id = answer["UploadId"]
        return self.upload_id

    async def send(self, part: bytes) -> None:
        upload_id, number = await self._started(), len(self.parts) + 1
        answer = await self.client.upload_part(
            Bucket=self.bucket, Key=self.name, UploadId=upload_id, PartNumber=number, Body=part
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def copy(self, source: str) -> None:
        upload_id, number = await self._started(), len(self.parts) + 1
        answer = await self.client.upload_part_copy(
            Bucket=self.bucket,
            Key=self.name,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source},
        )
        self.parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})

    async def complete(self) -> None:
        await self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.name,
            UploadId=await self._started(),
            MultipartUpload={"Parts": self.parts},
        )

    async def abort(self) -> None:
        if self.upload_id is not None:
            with suppress(Exception):  # the error that got here is the one to report
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.name, UploadId=self.upload_id
                )


async def read_body(body: StreamingBody) -> bytes:
    """A body read whole into one buffer that becomes the bytes returned (BytesIO hands its own buffer
    over in ``getvalue``), not a list of pieces joined into a second copy."""
    out = io.BytesIO()
    try:
        while chunk := await body.read(READ_BYTES):
            out.write(chunk)
    finally:
        body.close()
    return out.getvalue()
