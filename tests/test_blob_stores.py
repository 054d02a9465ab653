"""Every blob-store behaviour, against both stores: the folder (``LocalBlobStore``) and a bucket of a real
S3-compatible server (moto's, through ``S3BlobStore``). Each store is also served by a pixelgate process
(an emulator server with that store), whose signed ``/blobs/…`` URLs and byte ranges are checked here too.

A "URL of a blob's own" is what a caller is handed to fetch it without a key: for the folder, pixelgate's
signed URL (pixelgate serves the folder); for the bucket, its presigned GET URL (the bucket serves it).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import MakeServer, S3Service, ServerProcess, db_rows, png_bytes
from pixelgate.core.errors import NotFound
from pixelgate.store.blob_location import S3Location, open_blobs
from pixelgate.store.blobs import BlobStore, Presigner, UrlSigner
from pixelgate.store.s3 import PART_BYTES

PIECE = 3 * 256 * 1024
BIG = PART_BYTES * 2 + 1024 * 1024  # three parts in a bucket


@dataclass
class Served:
    kind: str
    server: ServerProcess
    location: Path | S3Location
    s3: S3Service


@pytest.fixture(scope="module", params=["local", "s3"])
def served(request: pytest.FixtureRequest, make_server: MakeServer, s3: S3Service) -> Served:
    """A pixelgate server on the store of this run, and where that store is."""
    if request.param == "local":
        server = make_server("sqlite", "--emulate")
        return Served("local", server, server.data_dir / "blobs", s3)
    prefix = f"stores-{uuid.uuid4().hex[:8]}/blobs"
    server = make_server("sqlite", "--emulate", *s3.store_args(prefix))
    return Served("s3", server, S3Location(s3.bucket, prefix), s3)


@pytest.fixture(scope="module")
async def opened(served: Served) -> AsyncIterator[tuple[BlobStore, Presigner | None]]:
    """The store in this process, on the same folder or bucket prefix as the server's."""
    async with open_blobs(
        served.location, endpoint_url=served.s3.endpoint_url if served.kind == "s3" else None, presigned=True
    ) as blobs:
        yield blobs.store, blobs.presigner


@pytest.fixture()
def store(opened: tuple[BlobStore, Presigner | None]) -> BlobStore:
    return opened[0]


@pytest.fixture()
def url_of(
    served: Served, opened: tuple[BlobStore, Presigner | None]
) -> Callable[[str, float], Awaitable[str]]:
    """The URL of a blob's own (see the module's docstring), valid until ``expires_at``."""
    presigner = opened[1]
    if presigner is not None:
        return presigner.presign_get
    signer = UrlSigner(signing_secret(served.server))

    async def signed(key: str, expires_at: float) -> str:
        return f"{served.server.url}/blobs/{key}?{signer.query(key, int(expires_at))}"

    return signed


def signing_secret(server: ServerProcess) -> str:
    ((secret,),) = db_rows(server, "SELECT value FROM meta WHERE key = 'url_signing_secret'")
    return str(secret)


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


def task_id() -> str:
    return f"task_img_{uuid.uuid4().hex[:20]}"


async def test_a_small_blob_is_put_and_got_back(store: BlobStore) -> None:
    key = f"{task_id()}/out-0.png"
    data = png_bytes()
    await store.put(key, data)
    assert await store.get(key) == data
    reader = await store.open(key)
    assert reader.size == len(data)
    assert await reader.read_all() == data


async def test_a_multipart_sized_blob_streams_back_in_whole_pieces(store: BlobStore, served: Served) -> None:
    key = f"{task_id()}/out-0.png"
    data = os.urandom(BIG)
    await store.put(key, data)
    reader = await store.open(key)
    assert reader.size == BIG
    pieces = [piece async for piece in reader.chunks(PIECE)]
    assert {len(piece) for piece in pieces[:-1]} == {PIECE}, "every piece but the last is whole"
    assert 0 < len(pieces[-1]) <= PIECE and b"".join(pieces) == data
    assert await store.get(key) == data
    if isinstance(served.location, S3Location):  # it went up in parts: a multipart ETag counts them
        name = f"{served.location.prefix}/{key}"
        head = served.s3.client().head_object(Bucket=served.s3.bucket, Key=name)
        assert head["ETag"].endswith('-3"'), head["ETag"]
        assert head["ContentType"] == "image/png"


async def test_a_range_is_read_from_the_store(store: BlobStore) -> None:
    key = f"{task_id()}/out-0.png"
    data = os.urandom(2 * PIECE + 100)
    await store.put(key, data)
    for start, stop in ((0, 10), (5, PIECE + 7), (PIECE, len(data)), (len(data) - 1, len(data))):
        reader = await store.open(key)
        read = [piece async for piece in reader.chunks(PIECE, start, stop)]
        assert b"".join(read) == data[start:stop], (start, stop)
        assert all(len(piece) == PIECE for piece in read[:-1])


async def test_ranges_through_pixelgate_signed_urls(store: BlobStore, served: Served) -> None:
    key = f"{task_id()}/out-0.png"
    data = os.urandom(PIECE + 5000)
    await store.put(key, data)
    signer = UrlSigner(signing_secret(served.server))
    url = f"{served.server.url}/blobs/{key}?{signer.query(key, int(time.time()) + 600)}"
    async with httpx.AsyncClient(timeout=30) as client:
        whole = await client.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "image/png"
        for header, start, stop in (
            ("bytes=0-99", 0, 100),
            ("bytes=100-", 100, len(data)),
            ("bytes=-300", len(data) - 300, len(data)),
            (f"bytes={PIECE - 10}-{PIECE + 10}", PIECE - 10, PIECE + 11),
            (f"bytes=10-{len(data) + 500}", 10, len(data)),  # past the end: to the end
        ):
            part = await client.get(url, headers={"Range": header})
            assert part.status_code == 206, (header, part.text)
            assert part.content == data[start:stop], header
            assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(data)}"
        beyond = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        error = beyond.json()["error"]
        assert error["code"] == "range_not_satisfiable" and str(len(data)) in error["message"]
        for ignored in ("bytes=0-1,5-9", "lines=1-2", "bytes=9-1"):  # several, other units, malformed
            answer = await client.get(url, headers={"Range": ignored})
            assert answer.status_code == 200 and answer.content == data, ignored
        unsure = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"an-old-etag"'})
        assert unsure.status_code == 200 and unsure.content == data


async def test_copy_keeps_its_own_bytes(store: BlobStore) -> None:
    source, target = f"{task_id()}/ref-0.png", f"{task_id()}/hist-0.png"
    await store.put(source, b"a reference")
    await store.copy(source, target)
    await store.delete_prefix(source.split("/")[0])
    assert await store.get(target) == b"a reference"
    with pytest.raises(NotFound) as missing:
        await store.copy(source, f"{task_id()}/ref-0.png")
    assert missing.value.code == "image_not_found" and source in missing.value.message


@pytest.mark.parametrize("size", [3, 6 * 1024 * 1024], ids=["small", "a-part-or-more"])
async def test_append_adds_at_the_end(store: BlobStore, size: int) -> None:
    key = f"file-{uuid.uuid4().hex[:24]}/content"
    first = os.urandom(size)
    await store.put(key, first)
    await store.append(key, b"")
    await store.append(key, b"next piece")
    assert await store.get(key) == first + b"next piece"
    with pytest.raises(NotFound):
        await store.append(f"file-{uuid.uuid4().hex[:24]}/content", b"x")


async def test_writing_in_pieces_stores_only_what_succeeded(store: BlobStore) -> None:
    key = f"file-{uuid.uuid4().hex[:24]}/content"
    line = os.urandom(100_000)
    async with store.writing(key) as out:
        for _ in range(100):  # 10 MB: more than a part
            await out.write(line)
    assert out.size == 100 * len(line)
    assert await store.get(key) == line * 100
    failed = f"file-{uuid.uuid4().hex[:24]}/content"
    with pytest.raises(RuntimeError):
        async with store.writing(failed) as out:
            await out.write(line * 60)
            raise RuntimeError("the batch stopped")
    with pytest.raises(NotFound):
        await store.get(failed)
    assert [blob async for blob in store.listing(failed.split("/")[0])] == []


async def test_delete_by_prefix_takes_every_blob_of_one_task_only(store: BlobStore) -> None:
    doomed, kept = task_id(), task_id()
    gate = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with gate:
            await store.put(key, b"x")

    # More than one ListObjectsV2 page and one DeleteObjects call (1000 keys each).
    await asyncio.gather(*(put(f"{doomed}/out-{i}.png") for i in range(1001)), put(f"{kept}/out-0.png"))
    await store.delete_prefix(doomed)
    assert [blob async for blob in store.listing(doomed)] == []
    assert await store.get(f"{kept}/out-0.png") == b"x"
    await store.delete_prefix(doomed)  # nothing left: no error
    await store.delete_prefix(task_id())


async def test_listing_gives_keys_sizes_and_times(store: BlobStore) -> None:
    first, second = task_id(), task_id()
    before = time.time()
    await store.put(f"{first}/out-0.png", b"12345")
    await store.put(f"{first}/ref-0.png", b"123")
    await store.put(f"{second}/out-0.png", b"1")
    after = time.time()
    listed = [blob async for blob in store.listing(first)]
    assert [(blob.key, blob.size) for blob in listed] == [
        (f"{first}/out-0.png", 5),
        (f"{first}/ref-0.png", 3),
    ]
    for blob in listed:
        assert blob.prefix == first
        assert before - 1 <= blob.modified <= after + 1  # S3 keeps whole seconds
    everything = [blob.key async for blob in store.listing()]
    assert everything == sorted(everything)
    assert {f"{first}/out-0.png", f"{second}/out-0.png"} <= set(everything)


async def test_a_missing_or_malformed_key_is_not_found(store: BlobStore) -> None:
    for key in (f"{task_id()}/out-9.png", "../etc/passwd", "a/b/c"):
        for read in (store.get, store.open):
            with pytest.raises(NotFound) as caught:
                await read(key)
            assert caught.value.code == "image_not_found"


async def test_a_url_of_its_own_fetches_the_blob(
    store: BlobStore, url_of: Callable[[str, float], Awaitable[str]], served: Served
) -> None:
    key = f"{task_id()}/out-0.png"
    data = png_bytes(300, 200)
    await store.put(key, data)
    url = await url_of(key, time.time() + 600)
    if served.kind == "s3":
        assert url.startswith(f"{served.s3.endpoint_url}/{served.s3.bucket}/")
    else:
        assert url.startswith(served.server.url)
    fetched = await fetch(url)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["content-type"] == "image/png"


async def test_a_url_of_its_own_expires_when_asked(
    store: BlobStore, url_of: Callable[[str, float], Awaitable[str]], served: Served
) -> None:
    key = f"{task_id()}/out-0.png"
    await store.put(key, b"soon gone")
    expires_at = int(time.time()) + 2
    url = await url_of(key, expires_at)
    if served.kind == "s3":
        # moto does not refuse an expired presigned URL (AWS, MinIO and R2 do): what the URL tells the
        # bucket is checked instead.
        query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert signed_at.timestamp() + int(query["X-Amz-Expires"]) == pytest.approx(expires_at, abs=1)
        assert (await fetch(url)).content == b"soon gone"
        return
    assert (await fetch(url)).status_code == 200
    await asyncio.sleep(expires_at - time.time() + 1.1)
    late = await fetch(url)
    assert late.status_code == 403 and late.json()["error"]["code"] == "invalid_signature"
