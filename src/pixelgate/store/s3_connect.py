"""The S3 clients of an ``S3BlobStore``, and the check ``serve`` makes of a bucket before it starts.

Region and credentials come from the standard AWS variables (``AWS_REGION`` or ``AWS_DEFAULT_REGION``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or botocore's other sources
(``~/.aws``, an instance role); the service is AWS unless ``--s3-endpoint-url`` names another.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pixelgate.store.blob_location import BlobStoreRefused, S3Location
from pixelgate.store.s3 import PART_BYTES, S3BlobStore, read_body


def _config(endpoint_url: str | None) -> AioConfig:
    return AioConfig(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=64,
        # Checksums only where S3 requires them: the newer default (a CRC32 on every upload) is refused
        # by some S3-compatible services.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # MinIO, moto and most self-hosted services answer at one host, with the bucket in the path.
        s3={"addressing_style": "path"} if endpoint_url else None,
        signature_version="s3v4",
    )


def _region() -> str | None:
    # AWS_REGION is what the newer AWS SDKs read; botocore reads AWS_DEFAULT_REGION (and ~/.aws/config).
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@asynccontextmanager
async def connect(
    location: S3Location, *, endpoint_url: str | None, part_bytes: int = PART_BYTES
) -> AsyncIterator[S3BlobStore]:
    """The store, on two clients (see ``streams``) that are closed when the block ends."""
    session = get_session()
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                session.create_client(
                    "s3", region_name=_region(), endpoint_url=endpoint_url, config=_config(endpoint_url)
                )
            )
            for _ in range(2)
        ]
        yield S3BlobStore(
            clients[0], location, streams=clients[1], endpoint_url=endpoint_url, part_bytes=part_bytes
        )


async def check(location: S3Location, *, endpoint_url: str | None) -> None:
    """Whether this server can use the bucket: it exists (HeadBucket), and a probe object can be written,
    read and deleted (a read-only key would otherwise fail every task). ``BlobStoreRefused`` says what
    failed."""
    where = f"--blob-store {location}" + (f" at --s3-endpoint-url {endpoint_url}" if endpoint_url else "")
    async with connect(location, endpoint_url=endpoint_url) as store:
        client, bucket = store.client, store.bucket
        probe = f"{store.root}.pixelgate-probe-{secrets.token_hex(8)}"
        step = "checking the bucket (HeadBucket)"
        try:
            await client.head_bucket(Bucket=bucket)
            step = f"writing the probe object {probe} (PutObject)"
            await client.put_object(Bucket=bucket, Key=probe, Body=b"pixelgate")
            step = f"reading the probe object {probe} (GetObject)"
            await read_body((await client.get_object(Bucket=bucket, Key=probe))["Body"])
            step = f"deleting the probe object {probe} (DeleteObject)"
            await client.delete_object(Bucket=bucket, Key=probe)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BlobStoreRefused(
                _refusal(where, bucket, step, str(error.get("Code")), error.get("Message"))
            ) from None
        except NoCredentialsError:
            raise BlobStoreRefused(
                f"{where}: no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_SESSION_TOKEN for temporary ones)"
            ) from None
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise BlobStoreRefused(
                f"{where}: the S3 service did not answer while {step}: {exc or type(exc).__name__}: check "
                "the endpoint URL (PIXELGATE_S3_ENDPOINT_URL; AWS itself when unset) and that it runs"
            ) from None


def _refusal(where: str, bucket: str, step: str, code: str, message: str | None) -> str:
    said = f"{code}: {message}" if message else code
    if code in ("404", "NoSuchBucket"):
        return f"{where}: the bucket {bucket!r} does not exist ({said}): create it, or name an existing one"
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return (
            f"{where}: access was refused while {step} ({said}): check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and that they may list, read, write and delete "
            "objects in the bucket"
        )
    if code in (
        "301",
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
    ):
        return f"{where}: the bucket is in another region ({said}): set AWS_REGION to the bucket's region"
    return f"{where}: the S3 service refused {step} ({said})"
