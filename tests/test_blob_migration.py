"""Moving a folder's blobs into a bucket of a real S3-compatible server (moto's): every blob arrives with its
bytes, a second run moves nothing, a run that failed part way goes on where it stopped, and a copy whose
bytes differ is not counted as moved."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conftest import MakeServer, S3Service
from pixelgate.core.errors import StorageUnavailable
from pixelgate.store.blob_location import S3Location, open_blobs
from pixelgate.store.blob_migration import migrate, read_journal
from pixelgate.store.blobs import BlobStore
from pixelgate.store.local_blobs import LocalBlobStore
from pixelgate.store.s3 import PART_BYTES

BLOBS = {
    "task_img_aaa/out-0.png": b"\x89PNG one",
    "task_img_aaa/ref-0.jpeg": b"\xff\xd8 two",
    "task_img_bbb/out-0.png": os.urandom(PART_BYTES + 12345),  # goes up as a multipart upload
    "file-ccc/input.jsonl": b'{"custom_id": "x"}\n',
}


@pytest.fixture()
async def bucket(s3: S3Service) -> AsyncIterator[BlobStore]:
    location = S3Location(s3.bucket, f"migrate-{uuid.uuid4().hex[:8]}")
    async with open_blobs(location, endpoint_url=s3.endpoint_url, presigned=False) as blobs:
        yield blobs.store


@pytest.fixture()
async def folder(tmp_path: Path) -> LocalBlobStore:
    store = LocalBlobStore(tmp_path / "blobs")
    for key, data in BLOBS.items():
        await store.put(key, data)
    return store


async def contents(store: BlobStore) -> dict[str, bytes]:
    return {blob.key: await store.get(blob.key) async for blob in store.listing()}


async def test_every_blob_arrives_once_and_a_second_run_moves_nothing(
    folder: LocalBlobStore, bucket: BlobStore, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    first = await migrate(folder, bucket, journal)
    assert (first.moved, first.already, first.failed) == (len(BLOBS), 0, [])
    assert first.moved_bytes == sum(len(data) for data in BLOBS.values())
    assert await contents(bucket) == BLOBS
    assert set(read_journal(journal)) == set(BLOBS)

    again = await migrate(folder, bucket, journal)
    assert (again.moved, again.already) == (0, len(BLOBS))

    await folder.put("task_img_ddd/out-0.png", b"written since")  # a server kept running meanwhile
    later = await migrate(folder, bucket, journal)
    assert (later.moved, later.already) == (1, len(BLOBS))
    assert await bucket.get("task_img_ddd/out-0.png") == b"written since"


class Flaky:
    """A target that fails the writes of some keys (an outage), or keeps other bytes than it was given."""

    def __init__(
        self, store: BlobStore, *, refuse: set[str] = frozenset(), corrupt: set[str] = frozenset()
    ) -> None:
        self.store, self.refuse, self.corrupt = store, refuse, corrupt
        self.description = store.description

    async def put(self, key: str, data: bytes) -> None:
        if key in self.refuse:
            raise StorageUnavailable(f"the bucket did not answer writing {key}")
        await self.store.put(key, data + b"!" if key in self.corrupt else data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


async def test_a_run_that_failed_part_way_goes_on_where_it_stopped(
    folder: LocalBlobStore, bucket: BlobStore, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    broken = "task_img_aaa/ref-0.jpeg"
    first = await migrate(folder, Flaky(bucket, refuse={broken}), journal)  # type: ignore[arg-type]
    assert first.moved == len(BLOBS) - 1
    assert [key for key, _ in first.failed] == [broken] and "did not answer" in first.failed[0][1]
    assert broken not in read_journal(journal)

    second = await migrate(folder, bucket, journal)
    assert (second.moved, second.already, second.failed) == (1, len(BLOBS) - 1, [])
    assert await contents(bucket) == BLOBS


async def test_a_copy_with_other_bytes_is_not_counted_as_moved(
    folder: LocalBlobStore, bucket: BlobStore, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    bad = "task_img_aaa/out-0.png"
    report = await migrate(folder, Flaky(bucket, corrupt={bad}), journal)  # type: ignore[arg-type]
    ((key, why),) = report.failed
    assert key == bad and "SHA-256" in why
    assert bad not in read_journal(journal)
    assert (await migrate(folder, bucket, journal)).moved == 1
    assert await bucket.get(bad) == BLOBS[bad]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )


def test_a_data_dir_moves_into_a_bucket_and_its_server_carries_on_there(
    make_server: MakeServer, s3: S3Service, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    before = make_server("sqlite", "--emulate", data_dir=data_dir)
    made = httpx.post(
        f"{before.url}/v1/images/generations",
        json={"model": "gemini-3.1-flash-image", "prompt": "a kite", "resolution": "512", "async": False},
        timeout=60,
    ).json()
    first = httpx.post(
        f"{before.url}/v1beta/interactions",
        json={"model": "gemini-3-pro-image", "input": "a house"},
        timeout=60,
    ).json()
    image = httpx.get(made["data"][0]["url"], timeout=30).content
    before.stop()

    bucket = f"s3://{s3.bucket}/moved-{uuid.uuid4().hex[:8]}"
    endpoint = ("--s3-endpoint-url", s3.endpoint_url)
    moved = cli("blobs", "migrate", "--to", bucket, "--data-dir", str(data_dir), *endpoint, "--json")
    assert moved.returncode == 0, moved.stderr
    report = json.loads(moved.stdout)
    assert report["moved"] >= 2 and report["failed"] == [] and report["already"] == 0
    again = json.loads(
        cli("blobs", "migrate", "--to", bucket, "--data-dir", str(data_dir), *endpoint, "--json").stdout
    )
    assert (again["moved"], again["already"]) == (0, report["moved"])

    for blob in (data_dir / "blobs").rglob("*"):  # the server that follows must read the bucket, not these
        if blob.is_file():
            blob.unlink()
    after = make_server("sqlite", "--emulate", "--blob-store", bucket, *endpoint, data_dir=data_dir)
    task = httpx.get(
        f"{after.url}/v1/tasks/{made['data'][0]['url'].split('/blobs/')[1].split('/')[0]}", timeout=30
    )
    assert task.status_code == 200, task.text
    (entry,) = task.json()["data"]
    assert httpx.get(entry["url"], timeout=30).content == image  # from the bucket, through the new server
    assert base64.b64decode(entry["b64_json"]) == image
    second = httpx.post(
        f"{after.url}/v1beta/interactions",
        json={"model": "gemini-3-pro-image", "input": "at night", "previous_interaction_id": first["id"]},
        timeout=60,
    ).json()
    assert second["status"] == "completed", second
    after.stop()

    backup = cli("backup", str(tmp_path / "backup"), "--data-dir", str(data_dir), "--blob-store", bucket)
    assert backup.returncode == 0, backup.stderr
    assert f"the images are in {bucket}, not in this backup" in backup.stderr
    assert not (tmp_path / "backup" / "blobs").exists()


@pytest.mark.parametrize(
    ("to", "says"),
    [("/tmp/elsewhere", "is a folder"), ("s3://Bad_Bucket/x", "is not an S3 bucket name")],
)
def test_migrate_refuses_what_is_not_a_bucket(to: str, says: str, tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    result = cli("blobs", "migrate", "--to", to, "--data-dir", str(tmp_path))
    assert result.returncode == 2 and says in result.stderr and not result.stdout, result
