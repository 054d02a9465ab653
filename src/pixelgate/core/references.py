"""Reference images as callers give them (a URL, a data URI, bare base64 or uploaded bytes), turned into
checked bytes. Every dialect hands its references here, so each one is judged by the same rules."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx2

from pixelgate.core.errors import InvalidRequest, PayloadTooLarge
from pixelgate.core.images import ImageInfo, decode_inline_image, inspect_image, is_url
from pixelgate.core.request import Limits
from pixelgate.core.safe_urls import AddressPolicy, UnsafeUrl, checked_destination


@dataclass(frozen=True)
class ReferenceInput:
    source: str | bytes
    field: str  # the caller's name for it, e.g. "reference_images[2]" or "image[]"
    kind: str | None = None


@dataclass(frozen=True)
class TurnInput:
    """An earlier conversation turn as the caller sent it (Gemini ``contents``, Interactions steps, chat
    messages). ``recover_signature``: the caller's wire format cannot carry a thought signature (chat
    completions), so a model turn's is looked up by its first image's bytes among the caller's signed
    outputs, and where none is found the turn is marked as one the upstream should not check."""

    role: str  # "user" or "model"
    text: str
    images: tuple[ReferenceInput, ...] = ()
    signature: str | None = None
    recover_signature: bool = False


@dataclass(frozen=True)
class VideoSource:
    """A video as the caller gave it: a URI (kept as is, never fetched) or inline bytes."""

    mime_type: str
    field: str
    uri: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class LoadedReference:
    data: bytes
    info: ImageInfo
    kind: str | None


class ImageFetcher:
    """Downloads images named by URL: from public addresses only (see ``safe_urls.py``; each redirect is
    checked again), within a size, a time and a redirect limit."""

    def __init__(
        self,
        limits: Limits,
        *,
        policy: AddressPolicy | None = None,
        timeout: float = 20.0,
        max_redirects: int = 5,
    ) -> None:
        self.limits = limits
        self.policy = policy or AddressPolicy()
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._client = httpx2.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "pixelgate"}
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, field: str) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(url, field)
        except TimeoutError:
            raise InvalidRequest(
                f"{field} {url!r} could not be fetched within {self.timeout:g} s: use a faster host or send "
                "the image inline as base64",
                param=field,
                code="image_fetch_failed",
            ) from None
        except UnsafeUrl as exc:
            raise InvalidRequest(f"{field}: {exc}", param=field, code="image_url_forbidden") from None
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            raise InvalidRequest(
                f"{field} {url!r} could not be fetched ({type(exc).__name__}): use a reachable http(s) URL "
                "or send the image inline as base64",
                param=field,
                code="image_fetch_failed",
            ) from None

    async def _follow(self, url: str, field: str) -> bytes:
        target = httpx2.URL(url)
        for _ in range(self.max_redirects + 1):
            destination = await checked_destination(target, self.policy)
            request = self._client.build_request(
                "GET", destination.url, headers=destination.headers, extensions=destination.extensions
            )
            response = await self._client.send(request, stream=True)
            try:
                if response.is_redirect and "location" in response.headers:
                    target = target.join(response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise InvalidRequest(
                        f"{field} {url!r} could not be fetched: the server answered HTTP {response.status_code}",
                        param=field,
                        code="image_fetch_failed",
                    )
                return await self._read(response, url, field)
            finally:
                await response.aclose()
        raise InvalidRequest(
            f"{field} {url!r} redirected more than {self.max_redirects} times: give the image's own URL",
            param=field,
            code="image_fetch_failed",
        )

    async def _read(self, response: httpx2.Response, url: str, field: str) -> bytes:
        limit = self.limits.max_reference_bytes
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"{field} {url!r} is larger than {limit:,} bytes", param=field)
            chunks.append(chunk)
        return b"".join(chunks)


async def load_reference(ref: ReferenceInput, fetcher: ImageFetcher, limits: Limits) -> LoadedReference:
    if isinstance(ref.source, bytes):
        data = ref.source
        if len(data) > limits.max_reference_bytes:
            raise PayloadTooLarge(
                f"{ref.field} is {len(data):,} bytes: at most {limits.max_reference_bytes:,} per image",
                param=ref.field,
            )
    elif is_url(ref.source):
        data = await fetcher.fetch(ref.source, ref.field)
    else:
        data = decode_inline_image(ref.source, field=ref.field, max_bytes=limits.max_reference_bytes)
    # verify() reads the whole file; for a big PNG that is milliseconds of CPU, so off the event loop.
    info = await asyncio.to_thread(inspect_image, data, field=ref.field, max_pixels=limits.max_image_pixels)
    return LoadedReference(data=data, info=info, kind=ref.kind)


async def load_references(
    refs: list[ReferenceInput], fetcher: ImageFetcher, limits: Limits
) -> list[LoadedReference]:
    return list(await asyncio.gather(*(load_reference(ref, fetcher, limits) for ref in refs)))
