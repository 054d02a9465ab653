"""How many decoded pixels the whole process may hold at once.

An image is small to send and large to decode: a one-colour PNG of 8000 x 8000 is 200 KB on the wire and
192 MB in memory. A limit per image (``max_image_pixels``) does not bound a server that decodes many at
once, so every decode of untrusted pixels takes its pixels from one budget per process first, and waits
while others hold it. The decoders keep their part small (``core/thumbnails.py`` decodes a band of rows at
a time where it can); the budget bounds what is left, whatever the number of requests.

Decodes run in worker threads (``asyncio.to_thread``), so the budget is a thread-safe weighted semaphore,
first come first served so that a large image is not starved by a stream of small ones. One image larger
than the whole budget takes all of it, alone.

What is held at once is not yet what the process keeps: glibc's malloc gives each thread an arena of its
own and, after the first large block is freed, serves blocks of up to 32 MB from those arenas, which keep
freed memory. Six threads decoding in turn then kept six decodes' worth. ``return_large_blocks`` (called
at start) has every block of 4 MiB or more mapped on its own (Pillow keeps an image in blocks of 16 MiB),
so it goes back to the system when freed.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_PIXELS = 64 * 1024 * 1024  # one image of the largest size allowed by default (max_image_pixels)
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


class PixelBudget:
    def __init__(self, pixels: int = DEFAULT_PIXELS) -> None:
        if pixels < 1:
            raise ValueError(f"a pixel budget of {pixels} cannot hold any image: give at least 1")
        self.capacity = pixels
        self.held = 0
        self.peak = 0  # the most held at once (for tests and metrics)
        self._turns: deque[object] = deque()
        self._changed = threading.Condition()

    def resize(self, pixels: int) -> None:
        """Set the capacity (at start, from ``PIXELGATE_MAX_DECODED_PIXELS``)."""
        if pixels < 1:
            raise ValueError(f"a pixel budget of {pixels} cannot hold any image: give at least 1")
        with self._changed:
            self.capacity = pixels
            self._changed.notify_all()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` (at most the whole budget) while the block runs, waiting for them first."""
        turn = object()
        with self._changed:
            self._turns.append(turn)
            try:
                self._changed.wait_for(
                    lambda: self._turns[0] is turn and self.held + self._share(pixels) <= self.capacity
                )
            finally:
                self._turns.remove(turn)
                self._changed.notify_all()  # the next in line may fit too (or may be first now)
            wanted = self._share(pixels)
            self.held += wanted
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._changed:
                self.held -= wanted
                self._changed.notify_all()

    def _share(self, pixels: int) -> int:
        return max(0, min(pixels, self.capacity))


# The process's budget: every decode of pixels that came from outside takes from it.
DECODED_PIXELS = PixelBudget()


def return_large_blocks(threshold: int = 4 * 1024 * 1024) -> bool:
    """Have malloc map every block of ``threshold`` bytes or more on its own (glibc's ``M_MMAP_THRESHOLD``,
    which also stops it raising the threshold by itself), so that freed image buffers leave the process.
    Whether it could: False where the C library has no ``mallopt`` (macOS) or ignores it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
