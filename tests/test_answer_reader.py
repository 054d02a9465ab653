"""Upstream answers read as they arrive (``providers/answer_reader.py``): the same JSON as parsing the whole
body, whatever pieces it comes in, with each long string decoded from base64 on the way; and through a
real loopback upstream, a 4K-sized image answer that is never held as text."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import png_bytes
from pixelgate.core.errors import UpstreamError
from pixelgate.providers.answer_reader import AnswerReader, DecodedBase64, UnreadableAnswer
from pixelgate.providers.http import UpstreamHttp
from upstreams.client import channel_client

LONG = 16  # characters: a string longer than this is decoded, so that short tests reach the long path


def read(
    body: bytes, pieces: Iterator[int] | None = None, long_string: int = LONG, *, length_known: bool = True
) -> Any:
    """``body`` read in pieces of the given sizes; ``length_known``: as an answer with a Content-Length."""
    reader = AnswerReader(long_string=long_string)
    if length_known:
        reader.expect(len(body))
    position = 0
    for size in pieces or iter([len(body)]):
        reader.feed(body[position : position + size])
        position += size
        if position >= len(body):
            break
    reader.feed(body[position:])
    return reader.result()


def plain(value: Any) -> Any:
    """``value`` with each decoded string as the bytes it stands for."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, DecodedBase64):
        return value.data
    return value


def expected(value: Any) -> Any:
    """What the reader should make of ``value``: strings longer than ``LONG`` decoded from base64."""
    if isinstance(value, dict):
        return {key: expected(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expected(item) for item in value]
    if isinstance(value, str) and len(value) > LONG:
        return base64.b64decode(value)
    return value


# At most 4 characters of at most 4 bytes each: never long, whatever they are.
short_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=4)
base64_text = st.binary(min_size=LONG, max_size=200).map(lambda data: base64.b64encode(data).decode())
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | short_text
    | base64_text
)
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    document=documents,
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    length_known=st.booleans(),
)
def test_any_document_in_any_pieces_reads_as_parsed_whole(
    document: Any, sizes: list[int], length_known: bool
) -> None:
    body = json.dumps(document, ensure_ascii=False).encode()
    assert plain(read(body, iter(sizes), length_known=length_known)) == expected(document)


def test_every_split_point_of_an_image_answer() -> None:
    image = os.urandom(300)
    text = base64.b64encode(image).decode()
    body = json.dumps({"data": [{"b64_json": text, "revised_prompt": 'a "cat" \\'}]}).encode()
    for cut in range(len(body) + 1):
        for length in (None, len(body), 10 * len(body)):  # unknown, given, or more than it was
            answer = AnswerReader(long_string=LONG)
            answer.expect(length)
            answer.feed(body[:cut])
            answer.feed(body[cut:])
            parsed = answer.result()
            assert parsed["data"][0]["b64_json"].data == image, (cut, length)
            assert parsed["data"][0]["revised_prompt"] == 'a "cat" \\'


def test_escaped_slashes_line_breaks_and_the_url_safe_alphabet() -> None:
    image = bytes(range(256)) * 3
    standard = base64.b64encode(image).decode()
    # PHP and some Java encoders write "/" as "\/"; MIME-style base64 breaks lines every 76 characters.
    escaped = "\\n".join(standard[i : i + 76] for i in range(0, len(standard), 76)).replace("/", "\\/")
    body = b'{"a": "' + escaped.encode() + b'", "b": "' + base64.urlsafe_b64encode(image).rstrip(b"=") + b'"}'
    for size in (1, 2, 3, 7, 64):
        parsed = read(body, iter([size] * len(body)))
        assert parsed["a"].data == image and parsed["b"].data == image


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"data": "' + b"A" * 40 + b'!!!!"}',
            "a string of more than 16 characters at byte 9 that is not base64",
        ),
        (b'{"data": "' + b"A" * 41 + b'"}', "that has one character too many to be base64"),
        (b'{"data": "' + b"A" * 40 + b'\\u0041"}', "holds an escape other than"),
        (b'{"data": "' + b"A" * 40, "an answer that is not JSON"),
        (b"<html><title>Bad gateway</title></html>", "an answer that is not JSON"),
    ],
)
def test_what_cannot_be_read_says_why(body: bytes, message: str) -> None:
    with pytest.raises(UnreadableAnswer) as caught:
        read(body, iter([5] * len(body)))
    assert message in str(caught.value)


def test_short_strings_and_everything_else_stay_as_they_are() -> None:
    body = orjson.dumps(
        {"id": "x" * 16, "created": 1, "usage": {"total_tokens": 3}, "ok": True, "none": None}
    )
    assert read(body) == orjson.loads(body)


def test_a_shorter_image_under_an_image_key_is_decoded_and_nothing_else_is() -> None:
    """Under ``b64_json``, ``data`` or ``bytesBase64Encoded``, a string of at least ``short_image`` characters
    that is base64 is decoded as it ends, however the answer is cut; text there, a short string there, base64
    under another key (a thought signature) and a key-like string in a list stay text."""
    image = os.urandom(600)
    text = base64.b64encode(image).decode()
    prose = "a lighthouse at dusk, " * 40  # long enough, and not base64
    document = {
        "data": [{"b64_json": text, "revised_prompt": "x"}],
        "candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": text}}]}}],
        "predictions": [{"bytesBase64Encoded": base64.urlsafe_b64encode(image).decode()}],
        "thoughtSignature": text,
        "text": {"data": prose},
        "short": {"data": "QUJD"},
        "listed": ["data", text],
    }
    body = json.dumps(document, indent=1).encode()  # whitespace between a key and its value, too
    for cut in range(0, len(body) + 1, 7):
        answer = AnswerReader(short_image=64)
        answer.feed(body[:cut])
        answer.feed(body[cut:])
        parsed = answer.result()
        assert parsed["data"][0]["b64_json"].data == image, cut
        assert parsed["candidates"][0]["content"]["parts"][0]["inlineData"]["data"].data == image, cut
        assert parsed["predictions"][0]["bytesBase64Encoded"].data == image, cut
        assert parsed["thoughtSignature"] == text and parsed["listed"] == ["data", text], cut
        assert parsed["text"] == {"data": prose} and parsed["short"] == {"data": "QUJD"}, cut


# -- through a real upstream on loopback ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def upstream_answering(body: bytes, piece: int) -> AsyncIterator[UpstreamHttp]:
    """A channel's client, and an HTTP/1.1 server behind it that answers any request with ``body`` as JSON,
    written ``piece`` bytes at a time (a real upstream's answer arrives in many reads)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        )
        for start in range(0, len(body), piece):
            writer.write(body[start : start + piece])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = channel_client(port, path="/v1", max_connections=2)
    try:
        yield upstream
    finally:
        await upstream.close()
        server.close()
        await server.wait_closed()


async def test_a_large_image_answer_is_decoded_as_it_arrives() -> None:
    image = png_bytes(1600, 1200) + os.urandom(1 << 20)  # over a mebibyte of base64, the long path
    text = base64.b64encode(image).decode().replace("/", "\\/")
    body = ('{"created": 1, "data": [{"b64_json": "' + text + '", "revised_prompt": "a cat"}]}').encode()
    async with upstream_answering(body, 10_000) as upstream:
        answer = await upstream.json("POST", "/images/generations", json={"prompt": "a cat"})
        entry = answer["data"][0]
        assert isinstance(entry["b64_json"], DecodedBase64) and entry["revised_prompt"] == "a cat"
        decoded = upstream.decode_base64(entry["b64_json"], "data[0].b64_json")
        assert decoded == image
        assert (await upstream.image(decoded, "data[0]")).width == 1600


async def test_a_long_string_that_is_not_base64_is_a_malformed_answer() -> None:
    body = b'{"data": [{"b64_json": "' + b"QUJD" * 300_000 + b'<html>"}]}'
    async with upstream_answering(body, 65_536) as upstream:
        with pytest.raises(UpstreamError) as caught:
            await upstream.json("POST", "/images/generations", json={})
    assert caught.value.code == "upstream_malformed"
    assert caught.value.message == (
        "channel 'chan': the upstream sent a string of more than 1,048,576 characters at byte 23 "
        "that is not base64 ('<' in b'QUJDQUJD<htm')"
    )
