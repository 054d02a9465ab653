"""``pixelgate batch FILE -o DIR``: a file of prompts run through a server's OpenAI Batch API, into a folder.

The rows of a JSONL or CSV file become one batch (``/v1/files`` then ``/v1/batches``), so they run at batch
priority and batch prices. Images come back inside the batch's output file (``response_format: b64_json``:
no second request per image) and are written to ``DIR/{id}.{ext}``; ``DIR/results.jsonl`` says what
became of each row.

Resuming rests on two files in DIR. ``.pixelgate-batch.json`` records the server and every batch sent with
the fingerprint of each row's request, so a rerun attaches to a batch still running instead of sending its
rows again. ``results.jsonl`` records each row's outcome with that fingerprint: a row is skipped only when it
is recorded done for the same request and its files are still there, so an edited row is sent again while
the untouched ones are not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pybase64
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from pixelgate.batch_input import BatchError, Defaults, Row, read_rows
from pixelgate.cli import exits

ENDPOINT = "/v1/images/generations"
STATE_FILE = ".pixelgate-batch.json"
RESULTS_FILE = "results.jsonl"
TERMINAL_STATES = ("completed", "failed", "cancelled", "expired")
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C


# --- what is in DIR ---------------------------------------------------------------------------------------


@dataclass
class SentBatch:
    id: str
    rows: dict[str, str]  # row id -> the fingerprint of the request sent
    collected: bool = False  # its results are in DIR
    usage_usd: float = 0.0


@dataclass
class State:
    """``DIR/.pixelgate-batch.json``: which server, which input, which batches."""

    server: str
    input_sha256: str = ""
    batches: list[SentBatch] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path, server: str) -> State:
        path = folder / STATE_FILE
        if not path.exists():
            return cls(server=server)
        try:
            data = json.loads(path.read_text())
            return cls(
                server=str(data["server"]),
                input_sha256=str(data.get("input_sha256", "")),
                batches=[SentBatch(**batch) for batch in data.get("batches", [])],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BatchError(
                f"{path} is not a state file this command can read ({exc}): remove it to start over "
                f"(the images already in {folder} are kept, but their rows are sent again)",
                exit_code=2,
            ) from None

    def save(self, folder: Path) -> None:
        data = {
            "server": self.server,
            "input_sha256": self.input_sha256,
            "batches": [asdict(batch) for batch in self.batches],
        }
        _write_atomically(folder / STATE_FILE, json.dumps(data, indent=1).encode())

    def pending(self) -> list[SentBatch]:
        return [batch for batch in self.batches if not batch.collected]


def _write_atomically(path: Path, data: bytes) -> None:
    """A file is either whole or absent: an interrupted write never leaves half an image that looks done."""
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / RESULTS_FILE
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                records[record["id"]] = record
    return records


def save_results(folder: Path, rows: list[Row], records: dict[str, dict[str, Any]]) -> None:
    """The input's rows in its order, then rows of earlier inputs that still have files in DIR."""
    in_input = [row.id for row in rows]
    order = in_input + [row_id for row_id in records if row_id not in set(in_input)]
    lines = [json.dumps(records[row_id]) for row_id in order if row_id in records]
    _write_atomically(folder / RESULTS_FILE, ("\n".join(lines) + "\n").encode() if lines else b"")


def is_done(row: Row, records: dict[str, dict[str, Any]], folder: Path) -> bool:
    record = records.get(row.id)
    return bool(
        record
        and record.get("status") == "done"
        and record.get("request") == row.fingerprint
        and record.get("files")
        and all((folder / name).is_file() for name in record["files"])
    )


# --- the server -------------------------------------------------------------------------------------------


class Server:
    """The few calls the command makes, each a success or a ``BatchError`` that says what went wrong."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx2.Client(base_url=self.url, headers=headers, timeout=120)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from None
        try:
            body = response.json()
        except ValueError:
            raise BatchError(
                f"{response.status_code}: {response.url} did not answer with JSON (is it a pixelgate server?)",
                exit_code=exits.NO_SERVER,
            ) from None
        if response.status_code >= 400:
            message = body.get("error", {}).get("message", body) if isinstance(body, dict) else body
            raise BatchError(
                f"{response.status_code}: {message}",
                exit_code=exits.for_status(response.status_code),
                status=response.status_code,
            )
        if not isinstance(body, dict):
            raise BatchError(f"{response.url} answered {str(body)[:200]!r}, not a JSON object")
        return body

    def lines(self, path: str) -> Iterator[str]:
        """A file's content line by line, without holding an output file of many images in memory."""
        try:
            with self.http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise BatchError(f"{response.status_code}: reading {path} failed: {response.text[:300]}")
                yield from response.iter_lines()
        except httpx2.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> BatchError:
        return BatchError(
            f"cannot reach {self.url}: {exc}. Start one with `pixelgate serve --emulate`.",
            exit_code=exits.NO_SERVER,
        )


# --- running ----------------------------------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Rows ended per second, over rich's recent samples."""

    def render(self, task: Any) -> Text:
        speed = task.speed
        return Text(f"{speed:.2f} rows/s" if speed else "- rows/s", style="progress.data.speed")


@dataclass
class Outcome:
    done_before: int = 0  # rows already in DIR when the command started
    cost_usd: float = 0.0  # of the batches followed by this run
    batches: list[str] = field(default_factory=list)


class BatchRun:
    def __init__(
        self,
        input_path: Path,
        folder: Path,
        rows: list[Row],
        server: Server,
        console: Console,
        poll_seconds: float,
        progress_console: Console | None = None,
    ) -> None:
        self.input_path = input_path
        self.folder = folder
        self.rows = rows
        self.by_id = {row.id: row for row in rows}
        self.server = server
        self.console = console  # the summary: the command's result
        self.progress_console = progress_console or console  # the bar and what happens on the way
        self.poll_seconds = poll_seconds
        self.records = load_results(folder)
        self.state = State.load(folder, server.url)
        self.outcome = Outcome()
        self.ended_rows = 0  # rows done before the run, or answered by a batch followed in it

    def run(self) -> int:
        started = time.monotonic()
        self._check_server_matches()
        input_hash = hashlib.sha256(self.input_path.read_bytes()).hexdigest()
        if self.state.batches and self.state.input_sha256 != input_hash:
            self.progress_console.print(
                f"{self.input_path} changed since the last run: rows are matched by id, and only new, edited, "
                "failed or unfinished ones are sent"
            )
        self.state.input_sha256 = input_hash
        self.state.server = self.server.url
        done = [row for row in self.rows if is_done(row, self.records, self.folder)]
        self.outcome.done_before = self.ended_rows = len(done)
        try:
            self._follow_all()
        except KeyboardInterrupt:
            self._say_how_to_resume()
            return EXIT_INTERRUPTED
        return self._summary(time.monotonic() - started)

    def _check_server_matches(self) -> None:
        pending = self.state.pending()
        if pending and self.state.server != self.server.url:
            raise BatchError(
                f"batch {pending[0].id} of {self.folder} was sent to {self.state.server}, not "
                f"{self.server.url}: run with --server {self.state.server} to collect it (or remove "
                f"{self.folder / STATE_FILE} to send its rows again here)",
                exit_code=2,
            )

    def _follow_all(self) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            RateColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.progress_console) as progress:
            bar = progress.add_task("starting", total=len(self.rows), completed=self.ended_rows, cost=0.0)
            tried: set[str] = set()
            # A batch left running by an earlier run is collected first; its rows are not sent twice (and
            # those that failed in it wait for the next run, as failures of this run's own batch do).
            for sent in self.state.pending():
                progress.console.print(f"attaching to batch {sent.id} ({len(sent.rows)} rows), sent earlier")
                if self._follow(sent, progress, bar):
                    tried |= set(sent.rows)
            waiting = [
                row
                for row in self.rows
                if row.id not in tried and not is_done(row, self.records, self.folder)
            ]
            if not waiting:
                if not tried:
                    progress.console.print(f"nothing to send: all {len(self.rows)} rows are in {self.folder}")
                return
            sent = self._send(waiting)
            progress.console.print(
                f"batch {sent.id}: {len(waiting)} rows sent to {self.server.url}"
                + (
                    f" ({self.outcome.done_before} already in {self.folder})"
                    if self.outcome.done_before
                    else ""
                )
            )
            self._follow(sent, progress, bar)

    def _send(self, rows: list[Row]) -> SentBatch:
        lines = "".join(
            json.dumps({"custom_id": row.id, "method": "POST", "url": ENDPOINT, "body": row.body}) + "\n"
            for row in rows
        )
        uploaded = self.server.call(
            "POST",
            "/v1/files",
            files={"file": (f"{self.input_path.stem}.jsonl", lines.encode(), "application/jsonl")},
            data={"purpose": "batch"},
        )
        # Once the server has made the batch it runs (and bills) whether or not this process lives on, so
        # Ctrl-C waits until the batch is recorded in DIR: a rerun then attaches to it rather than paying twice.
        with _interrupt_deferred():
            made = self.server.call(
                "POST",
                "/v1/batches",
                json={
                    "input_file_id": uploaded["id"],
                    "endpoint": ENDPOINT,
                    "completion_window": "24h",
                    "metadata": {"client": "pixelgate batch", "input": self.input_path.name[:200]},
                },
            )
            sent = SentBatch(id=str(made["id"]), rows={row.id: row.fingerprint for row in rows})
            self.state.batches.append(sent)
            self.state.save(self.folder)
        return sent

    def _follow(self, sent: SentBatch, progress: Progress, bar: TaskID) -> bool:
        """Polls the batch until it ends and collects it; ``False`` when the server no longer has it."""
        self.outcome.batches.append(sent.id)
        while True:
            try:
                batch = self.server.call("GET", f"/v1/batches/{sent.id}")
            except BatchError as exc:
                if exc.status != 404:
                    raise
                progress.console.print(
                    f"[yellow]batch {sent.id} is no longer on {self.server.url}: its unfinished rows are sent "
                    "again[/]"
                )
                sent.collected = True
                self.state.save(self.folder)
                return False
            counts = batch.get("request_counts") or {}
            cost = float(batch.get("usage_usd") or 0.0)
            ended = counts.get("completed", 0) + counts.get("failed", 0)
            progress.update(
                bar,
                completed=min(len(self.rows), self.ended_rows + ended),
                cost=self.outcome.cost_usd + cost,
                description=str(batch["status"]),  # the batch's id is printed above the bar
            )
            if batch["status"] in TERMINAL_STATES:
                break
            time.sleep(self.poll_seconds)
        self._collect(sent, batch)
        self.outcome.cost_usd += sent.usage_usd
        # Rows the batch never answered still count as ended, so the bar reaches its end.
        self.ended_rows += len(sent.rows)
        progress.update(bar, completed=min(len(self.rows), self.ended_rows), cost=self.outcome.cost_usd)
        return True

    def _collect(self, sent: SentBatch, batch: dict[str, Any]) -> None:
        """Writes the batch's images and each of its rows' outcome, then marks it collected."""
        answered: set[str] = set()
        if batch.get("output_file_id"):
            for line in self.server.lines(f"/v1/files/{batch['output_file_id']}/content"):
                if line.strip():
                    answered.add(self._save_output(sent, json.loads(line)))
        if batch.get("error_file_id"):
            for line in self.server.lines(f"/v1/files/{batch['error_file_id']}/content"):
                if line.strip():
                    entry = json.loads(line)
                    answered.add(entry["custom_id"])
                    self._record(sent, entry["custom_id"], "failed", error=_error_message(entry))
        errors = (batch.get("errors") or {}).get("data") or []
        why = "; ".join(str(e.get("message")) for e in errors) or f"the batch ended {batch['status']}"
        for row_id in sent.rows.keys() - answered:
            self._record(sent, row_id, "failed", error=f"no answer for this row: {why}")
        sent.collected = True
        sent.usage_usd = float(batch.get("usage_usd") or 0.0)
        save_results(self.folder, self.rows, self.records)
        self.state.save(self.folder)

    def _save_output(self, sent: SentBatch, entry: dict[str, Any]) -> str:
        row_id = str(entry["custom_id"])
        body = (entry.get("response") or {}).get("body") or {}
        images = [item.get("b64_json") for item in body.get("data") or []]
        if not images or not all(images):
            self._record(sent, row_id, "failed", error="the answer holds no image data (b64_json)")
            return row_id
        extension = EXTENSIONS.get(str(body.get("output_format")), ".png")
        row = self.by_id.get(row_id)
        several = (row.image_count if row else len(images)) > 1
        names = [
            f"{row_id}-{k}{extension}" if several else f"{row_id}{extension}" for k in range(len(images))
        ]
        for name, data in zip(names, images, strict=True):
            _write_atomically(self.folder / name, pybase64.b64decode(data, validate=True))
        self._record(sent, row_id, "done", files=names)
        return row_id

    def _record(
        self,
        sent: SentBatch,
        row_id: str,
        status: str,
        *,
        files: list[str] | None = None,
        error: str | None = None,
    ) -> None:
        earlier = self.records.get(row_id)
        if earlier:
            # Files of an earlier request for this row (another n or format) would pass for this one's.
            for stale in set(earlier.get("files") or []) - set(files or []):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / stale).unlink()
        self.records[row_id] = {
            "id": row_id,
            "status": status,
            "files": files or [],
            "error": error,
            "batch": sent.id,
            "request": sent.rows.get(row_id),
        }

    def _say_how_to_resume(self) -> None:
        pending = self.state.pending()
        if pending:
            self.progress_console.print(
                f"\n[yellow]interrupted: batch {pending[0].id} keeps running on {self.server.url}. Run the same "
                "command again to follow it and save its images.[/]"
            )
        else:
            self.progress_console.print("\n[yellow]interrupted: run the same command again to go on.[/]")

    def _summary(self, elapsed: float) -> int:
        done = [row for row in self.rows if is_done(row, self.records, self.folder)]
        failed = [row for row in self.rows if self.records.get(row.id, {}).get("status") == "failed"]
        unsent = len(self.rows) - len(done) - len(failed)
        table = Table(title="pixelgate batch", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("rows", f"{len(self.rows):,}")
        skipped = f" ({self.outcome.done_before:,} from earlier runs)" if self.outcome.done_before else ""
        table.add_row("done", f"{len(done):,}{skipped}")
        table.add_row("failed", f"{len(failed):,}")
        if unsent:
            table.add_row("not sent", f"{unsent:,}")
        table.add_row("cost (USD)", f"{self.outcome.cost_usd:.4f}")
        table.add_row("elapsed", f"{elapsed:.1f} s")
        if self.outcome.batches:
            table.add_row("batches", " ".join(self.outcome.batches))
        self.console.print(table)
        if failed:
            reasons: dict[str, list[str]] = {}
            for row in failed:
                reasons.setdefault(str(self.records[row.id].get("error")), []).append(row.id)
            why = Table(title="failed rows")
            why.add_column("rows", justify="right")
            why.add_column("ids", overflow="fold")
            why.add_column("reason", overflow="fold")
            for reason, ids in sorted(reasons.items(), key=lambda item: -len(item[1])):
                shown = " ".join(ids[:5]) + (f" … (+{len(ids) - 5})" if len(ids) > 5 else "")
                why.add_row(str(len(ids)), shown, escape(reason))
            self.console.print(why)
            self.console.print(
                "Fix the rows or the server and run the same command again: only failed and unfinished rows "
                "are sent."
            )
        self.console.print(f"images and {RESULTS_FILE} in {self.folder}")
        return 1 if failed or unsent else 0


def _error_message(entry: dict[str, Any]) -> str:
    """A failed line's reason: the refused request's error, or the line's own error (cancelled, expired)."""
    response = entry.get("response") or {}
    error = (response.get("body") or {}).get("error") or entry.get("error") or {}
    message = str(error.get("message") or error or "no reason given")
    return f"{response['status_code']}: {message}" if response.get("status_code") else message


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Ctrl-C inside the block takes effect when the block ends."""
    interrupted: list[bool] = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def run_batch(
    input_path: Path,
    folder: Path,
    *,
    defaults: Defaults,
    server_url: str,
    api_key: str | None,
    poll_seconds: float,
    console: Console,
    progress_console: Console | None = None,
) -> int:
    """The whole command; returns its exit status (0: every row done, 1: some failed, 130: interrupted),
    or raises ``BatchError`` with the status of ``cli/exits.py`` (2 for bad input, 5 for no server)."""
    rows = read_rows(input_path, defaults)
    if folder.exists() and not folder.is_dir():
        raise BatchError(f"-o {folder} is a file: give a folder (it is made if missing)", exit_code=2)
    folder.mkdir(parents=True, exist_ok=True)
    server = Server(server_url, api_key)
    try:
        return BatchRun(input_path, folder, rows, server, console, poll_seconds, progress_console).run()
    finally:
        server.close()
