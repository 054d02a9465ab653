"""What every benchmark shares: child processes whose memory is watched, free ports, percentiles."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, int(q * 10) - 1))])


class MemoryWatch:
    """Samples the resident memory of a process and its children every ``interval`` seconds, in a thread,
    keeping the peak and the series (for plots of memory over time)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.series: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def rss(self) -> int:
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.rss()
            self.peak = max(self.peak, now)
            self.series.append((time.monotonic() - self._started, now))
            self._stop.wait(self.interval)

    def reset_peak(self) -> int:
        """Start a new peak from the current level (returned, as the baseline of what comes next)."""
        self.peak = self.rss()
        return self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Service:
    """A server in a child process: started, waited for, memory-watched and stopped."""

    name: str
    command: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    data_dir: Path | None = None  # where a pixelgate keeps its database and images
    process: subprocess.Popen[bytes] | None = None
    memory: MemoryWatch | None = None

    def start(self, timeout: float = 60.0) -> Service:
        log = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, cwd=ROOT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: see {self.log_path}")
            try:
                if httpx.get(self.health_url, timeout=2).status_code < 500:
                    self.memory = MemoryWatch(self.process.pid)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer at {self.health_url} within {timeout:g} s")

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the process and its children have used so far, from /proc."""
        if self.memory is None:
            return 0.0
        total = 0.0
        try:
            processes = [self.memory.process, *self.memory.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def machine() -> str:
    """The machine a run was made on, as the README's table states it."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {sys.version.split()[0]}"


def mib(n: float) -> float:
    return round(n / 2**20, 1)
