"""Upstream JSON answers read as they arrive, with each long string (an image in base64: 36 MB of text
for a 4K PNG) decoded to bytes on the way instead of being held as text.

Parsing the whole body at once needs the body and then the string beside it, and the decoded image beside
that: about 2.7 copies of the image at the peak. Here the body is split while it streams in: the long
strings go, piece by piece, through a base64 decoder into one buffer, and the rest (the *skeleton*, a
few hundred bytes: ids, usage, the other fields) is parsed by orjson at the end. In the parsed answer each
long string is a ``DecodedBase64``.

Strings longer than ``long_string`` characters are decoded, and in an image API's answer those are images:
one that is not base64 makes the answer unreadable, and the reader says where it went wrong. A shorter
string is decoded as it ends where it is the value of a key that holds images (``b64_json``, ``data``,
``bytesBase64Encoded``) and at least ``short_image`` characters long, if it is base64 (else it stays text):
a 512x512 image or a JPEG is often under a mebibyte of base64, and orjson reading it as text cost more
than the rest of its answer (a fifth of a worker's time per task with a thousand tasks in flight).
"""

from __future__ import annotations

import binascii
import io
import re
import secrets
from typing import Any

import orjson
import pybase64

LONG_STRING = 1 << 20  # characters; a model's text is never this long, an image always is
SHORT_IMAGE = 4096  # characters; no id or word under an image's key is this long, nor an image shorter
RESERVED_AT_MOST = 8 << 20  # bytes: a 2K image and under is decoded into memory reserved at once
IMAGE_KEYS = frozenset({b"b64_json", b"data", b"bytesBase64Encoded"})  # OpenAI, Gemini, Imagen
_KEY_LENGTH = 64  # characters; a string this short may be the key of the value that follows it
# The escapes a JSON encoder may put in base64: "\/" (PHP, some Java) and line breaks (MIME-style base64).
_BASE64_ESCAPE = re.compile(rb"\\([/nrt])")
_URLSAFE = b"-_"
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=_-]")


class UnreadableAnswer(ValueError):
    """The answer is not JSON, or a long string in it is not base64; the message says which and where."""


class DecodedBase64:
    """A long base64 string of an answer, already decoded."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<DecodedBase64 of {len(self.data):,} bytes>"


class _Base64Decoder:
    """Decodes base64 given in pieces of any length: whole 4-character groups at once, the rest kept.

    ``capacity``, the most bytes it can decode to (when the answer's length tells), is reserved at once
    up to ``RESERVED_AT_MOST``: a buffer grown a piece at a time was copied whole each time it outgrew its
    memory, which for a 1K image (1.7 MB in 256 KiB pieces) cost twice the decoding itself. A 4K image's
    27 MB are left to grow: reserved at once, they cost no less CPU and, in two runs, 30 ms more a request."""

    def __init__(self, where: int, long_string: int, capacity: int | None = None) -> None:
        self.where = where  # the string's offset in the answer, and what made it long: for messages
        self.long_string = long_string
        self.output = io.BytesIO()
        if capacity and capacity <= RESERVED_AT_MOST:
            self.output.seek(capacity - 1)
            self.output.write(b"\0")  # BytesIO's only way to take its memory at once
            self.output.seek(0)
        self._carry = b""  # an incomplete 4-character group
        self._backslash = b""  # a backslash whose escaped character is yet to come

    def feed(self, raw: memoryview, *, escaped: bool) -> None:
        """Decode the next part of the string, read where it lies: an image's text is copied only by the
        decoding itself. ``escaped``: the part holds a backslash (some encoders escape "/")."""
        if escaped or self._backslash:
            self._feed_escaped(bytes(raw))
            return
        if self._carry:
            missing = 4 - len(self._carry)
            if len(raw) < missing:
                self._carry += bytes(raw)
                return
            self._decode(self._carry + bytes(raw[:missing]))
            raw = raw[missing:]
        whole = len(raw) - len(raw) % 4
        self._decode(raw[:whole])
        self._carry = bytes(raw[whole:])

    def _feed_escaped(self, raw: bytes) -> None:
        data = self._carry + self._backslash + raw
        self._backslash = b""
        if data.endswith(b"\\"):
            data, self._backslash = data[:-1], b"\\"
        if b"\\" in data:
            data = _BASE64_ESCAPE.sub(lambda m: b"/" if m.group(1) == b"/" else b"", data)
            if b"\\" in data:
                raise self._not_base64("holds an escape other than \\/, \\n, \\r or \\t")
        whole = len(data) - len(data) % 4
        self._decode(data[:whole])
        self._carry = data[whole:]

    def finish(self) -> DecodedBase64:
        if self._backslash:
            raise self._not_base64("ends with a lone backslash")
        rest = self._carry.rstrip(b"=")
        if len(rest) % 4 == 1:
            raise self._not_base64("has one character too many to be base64")
        self._decode(rest + b"=" * (-len(rest) % 4))
        self.output.truncate()  # what was reserved and not decoded to
        # BytesIO hands over its buffer without a copy when nothing else looks at it.
        return DecodedBase64(self.output.getvalue())

    def _decode(self, group: bytes | memoryview) -> None:
        if not group:
            return
        try:
            self.output.write(pybase64.b64decode(group, validate=True))
        except (binascii.Error, ValueError):
            try:  # some upstreams (and Google's own SDK) write the URL-safe alphabet
                self.output.write(pybase64.b64decode(group, altchars=_URLSAFE, validate=True))
            except (binascii.Error, ValueError):
                raise self._not_base64(_what_is_wrong(group)) from None

    def _not_base64(self, what: str) -> UnreadableAnswer:
        return UnreadableAnswer(
            f"a string of more than {self.long_string:,} characters at byte {self.where:,} that {what}"
        )


def _decoded_size(characters: int | None) -> int | None:
    """The most bytes ``characters`` of base64 decode to."""
    return None if characters is None else max(0, characters) * 3 // 4 + 3


def _what_is_wrong(group: bytes | memoryview) -> str:
    group = bytes(group)
    bad = _NOT_BASE64.search(group)
    if bad is None:
        return "is not base64 (padding inside it)"
    start = bad.start()
    return f"is not base64 ({chr(group[start])!r} in {group[max(0, start - 8) : start + 8]!r})"


class AnswerReader:
    """Feed an answer's body as it arrives (``feed``), then take the parsed JSON (``result``)."""

    def __init__(self, *, long_string: int = LONG_STRING, short_image: int = SHORT_IMAGE) -> None:
        self.long_string = long_string
        self.short_image = short_image
        self._last_short = b""  # the last short string: the key, if a value follows it
        self._image_value = False  # the current string is the value of a key in IMAGE_KEYS
        self._skeleton = bytearray()
        self._in_string = False
        self._skip_next = False  # the last piece ended inside an escape: its character comes first
        # The current string's raw text while it is short, as the parts of the pieces it lies in (kept, not
        # copied: growing one buffer a piece at a time copied the first MiB of every image many times over).
        self._string: list[tuple[memoryview, bool]] = []  # (part, whether it holds a backslash)
        self._string_length = 0
        self._decoder: _Base64Decoder | None = None  # the current string's decoder, once it is long
        self._decoded: list[DecodedBase64] = []
        self._token = secrets.token_hex(16)  # names the long strings in the skeleton; never guessed
        self._offset = 0  # of the piece being read, in the whole answer
        self._string_start = 0
        self._length: int | None = None  # of the whole answer, when its headers say

    def expect(self, length: int | None) -> None:
        """The answer's length in bytes (its ``Content-Length``), if known: what its strings can at most
        decode to is then reserved at once (see ``_Base64Decoder``)."""
        self._length = length

    def feed(self, piece: bytes) -> None:
        view = memoryview(piece)  # parts of the piece are handed on without copying them
        position = 0
        if self._skip_next and piece:
            self._take_string(view[:1], escaped=True)
            position, self._skip_next = 1, False
        while position < len(piece):
            if not self._in_string:
                quote = piece.find(b'"', position)
                if quote < 0:
                    self._skeleton += view[position:]
                    break
                self._skeleton += view[position : quote + 1]
                self._in_string, position = True, quote + 1
                self._string_start = self._offset + quote
                self._image_value = self._last_short in IMAGE_KEYS and self._follows_a_colon()
                continue
            # Two memchr scans: a regular expression for either byte reads about 100 MB/s, too slow here.
            quote = piece.find(b'"', position)
            backslash = piece.find(b"\\", position, len(piece) if quote < 0 else quote)
            if backslash >= 0:
                # The backslash and the character it escapes belong to the string, whatever they are.
                end = min(backslash + 2, len(piece))
                self._take_string(view[position:end], escaped=True)
                self._skip_next, position = backslash + 1 == len(piece), end
                continue
            if quote < 0:
                self._take_string(view[position:], escaped=False)
                break
            self._take_string(view[position:quote], escaped=False)
            self._end_string()
            position = quote + 1
        self._offset += len(piece)

    def result(self) -> Any:
        try:
            answer = orjson.loads(self._skeleton)
        except orjson.JSONDecodeError as exc:
            raise UnreadableAnswer(f"an answer that is not JSON ({exc})") from None
        return self._restore(answer) if self._decoded else answer

    def text(self) -> str:
        """The answer as text, long strings left out: what to quote when it is not JSON."""
        return self._skeleton.decode("utf-8", "replace")

    def _take_string(self, raw: memoryview, *, escaped: bool) -> None:
        if self._decoder is not None:
            self._decoder.feed(raw, escaped=escaped)
            return
        self._string.append((raw, escaped))
        self._string_length += len(raw)
        if self._string_length > self.long_string:
            left = None if self._length is None else self._length - self._string_start
            self._decoder = _Base64Decoder(self._string_start, self.long_string, _decoded_size(left))
            for part, part_escaped in self._string:
                self._decoder.feed(part, escaped=part_escaped)
            self._string.clear()

    def _follows_a_colon(self) -> bool:
        """Whether the string just opened (its quote ends the skeleton) is the value of a key."""
        at = len(self._skeleton) - 2
        while at >= 0 and self._skeleton[at] in b" \t\r\n":
            at -= 1
        return at >= 0 and self._skeleton[at] == ord(":")

    def _end_string(self) -> None:
        self._last_short = b""
        if self._decoder is not None:
            self._keep_decoded(self._decoder.finish())
            self._decoder = None
        elif (decoded := self._short_image()) is not None:
            self._keep_decoded(decoded)
        else:
            if self._string_length <= _KEY_LENGTH:
                self._last_short = b"".join(part for part, _ in self._string)
            for part, _ in self._string:
                self._skeleton += part
        self._string.clear()
        self._string_length = 0
        self._skeleton += b'"'
        self._in_string = False

    def _short_image(self) -> DecodedBase64 | None:
        """The string that ends, decoded, if it is an image's base64 under its key (see the module's doc)."""
        if not self._image_value or self._string_length < self.short_image:
            return None
        if any(escaped for _, escaped in self._string):
            return None  # an escaped "/" (PHP): left to orjson, as before
        decoder = _Base64Decoder(self._string_start, self.short_image, _decoded_size(self._string_length))
        try:
            for part, _ in self._string:
                decoder.feed(part, escaped=False)
            return decoder.finish()
        except UnreadableAnswer:
            return None  # not base64 after all: text, for whoever reads it to judge

    def _keep_decoded(self, decoded: DecodedBase64) -> None:
        self._skeleton += f"{self._token}{len(self._decoded)}".encode()
        self._decoded.append(decoded)

    def _restore(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._restore(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._restore(item) for item in value]
        if isinstance(value, str) and value.startswith(self._token):
            return self._decoded[int(value[len(self._token) :])]
        return value
