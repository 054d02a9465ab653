"""The input of ``pixelgate batch``: a JSONL or CSV file of prompts read into rows, each a request body,
with every problem found before anything is sent (each naming its line, the value and what is allowed)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelgate.core.errors import one_of

# The request fields a row may set (``id`` names the row; the rest go into the request body as they are).
REQUEST_FIELDS = (
    "prompt",
    "model",
    "size",
    "resolution",
    "aspect_ratio",
    "n",
    "seed",
    "quality",
    "output_format",
    "reference_images",
)
ROW_FIELDS = ("id", *REQUEST_FIELDS)
INTEGER_FIELDS = ("n", "seed")
# Row ids become file names, so they keep to characters every file system takes, and never start with a dot.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Four digits at least, so a file that grows from 9 rows to 10 keeps the ids (and the files) it had.
MIN_ID_DIGITS = 4
MAX_PROBLEMS_SHOWN = 20


class BatchError(Exception):
    """Something that stops the command: its message, and the exit status it ends with."""

    def __init__(self, message: str, exit_code: int = 1, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status  # the HTTP status when the server refused a request


class InputError(BatchError):
    """What is wrong with the input file: every problem found, each naming its line (exit status 2)."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"… and {len(problems) - len(shown)} more")
        noun = "problem" if len(problems) == 1 else "problems"
        text = "\n".join(f"  {problem}" for problem in shown)
        super().__init__(f"{path} has {len(problems)} {noun}; nothing was sent:\n{text}", exit_code=2)
        self.problems = problems


@dataclass(frozen=True)
class Defaults:
    """Command-line values for the rows that do not give their own."""

    model: str | None = None
    size: str | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class Row:
    id: str
    line: int
    body: dict[str, Any]  # the request body, defaults applied

    @property
    def fingerprint(self) -> str:
        """Names the request: a row edited since its images were made has another one, and is sent again."""
        canonical = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def image_count(self) -> int:
        return int(self.body.get("n", 1))


# --- reading the input file -----------------------------------------------------------------------------


def read_rows(path: Path, defaults: Defaults) -> list[Row]:
    """The file's rows, or an ``InputError`` listing every bad line and column (before anything is sent)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, ["the file does not exist"]) from None
    except IsADirectoryError:
        raise InputError(path, ["it is a folder, not a JSONL or CSV file"]) from None
    except UnicodeDecodeError as exc:
        raise InputError(path, [f"it is not UTF-8 text (byte {exc.start})"]) from None
    problems: list[str] = []
    raw = _read_csv(text, problems) if _is_csv(path, text) else _read_jsonl(text, problems)
    rows = _to_rows(raw, defaults, problems)
    if not raw and not problems:
        problems.append("it holds no rows: give one prompt per line (JSONL) or per row under a header (CSV)")
    if problems:
        raise InputError(path, problems)
    return rows


def _is_csv(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return True
    if suffix in (".jsonl", ".ndjson", ".json"):
        return False
    # Any other name: a JSONL file's first row is an object, a CSV file's first row is its header.
    first = next((line for line in text.splitlines() if line.strip()), "")
    return not first.lstrip().startswith("{")


def _allowed() -> str:
    return one_of(ROW_FIELDS)


def _read_jsonl(text: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    found: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(value, dict):
            kind = type(value).__name__
            problems.append(f'line {number}: a {kind}, not a JSON object such as {{"prompt": "a red fox"}}')
            continue
        unknown = [name for name in value if name not in ROW_FIELDS]
        if unknown:
            problems.append(
                f"line {number}: unknown field {one_of([repr(u) for u in unknown])}: use {_allowed()}"
            )
            continue
        found.append((number, value))
    return found


def _read_csv(text: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))  # a file, not its lines: a quoted cell may span lines
    header: list[str] | None = None
    found: list[tuple[int, dict[str, Any]]] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            unknown = [name for name in header if name not in ROW_FIELDS]
            if unknown:
                problems.append(
                    f"line {reader.line_num} (the header): unknown column {one_of([repr(u) for u in unknown])}: "
                    f"use {_allowed()}"
                )
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                problems.append(
                    f"line {reader.line_num} (the header): column {one_of([repr(r) for r in repeated])} "
                    "appears more than once"
                )
            if "prompt" not in header:
                problems.append(
                    f"line {reader.line_num} (the header): no prompt column; the columns are {_allowed()}"
                )
            if problems:
                return []
            continue
        if len(cells) > len(header):
            problems.append(
                f"line {reader.line_num}: {len(cells)} cells but the header has {len(header)} columns "
                "(quote a value that holds a comma)"
            )
            continue
        # An empty cell is a value the row does not give: the command-line default (or the server's) applies.
        values: dict[str, Any] = {
            name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()
        }
        if "reference_images" in values:
            # Whitespace separates the URLs: a URL never holds a raw space, while "|" and "," can occur in one.
            values["reference_images"] = values["reference_images"].split()
        found.append((reader.line_num, values))
    return found


def _to_rows(raw: list[tuple[int, dict[str, Any]]], defaults: Defaults, problems: list[str]) -> list[Row]:
    digits = max(MIN_ID_DIGITS, len(str(len(raw))))
    rows: list[Row] = []
    first_line_of: dict[str, int] = {}
    for position, (number, values) in enumerate(raw, start=1):
        body: dict[str, Any] = {}
        row_problems: list[str] = []
        if values.get("prompt") in (None, ""):
            row_problems.append(f"line {number}: no prompt: every row needs one")
        for name, value in values.items():
            if name == "id":
                continue
            checked = _check_value(name, value)
            if isinstance(checked, _Problem):
                row_problems.append(f"line {number}: {checked.text}")
            elif checked is not None:
                body[name] = checked
        row_id = _row_id(values.get("id"), position, digits)
        if isinstance(row_id, _Problem):
            row_problems.append(f"line {number}: {row_id.text}")
        elif row_id in first_line_of:
            row_problems.append(
                f"line {number}: id {row_id!r} is already the id of line {first_line_of[row_id]}: "
                "each row's id must be unique"
            )
        else:
            first_line_of[row_id] = number
        if row_problems:
            problems.extend(row_problems)
            continue
        assert isinstance(row_id, str)
        _apply_defaults(body, defaults)
        body["response_format"] = "b64_json"
        rows.append(Row(id=row_id, line=number, body=body))
    return rows


@dataclass(frozen=True)
class _Problem:
    text: str


def _check_value(name: str, value: Any) -> Any:
    """The value to send for a field, ``None`` to leave it out, or what is wrong with it."""
    if name in INTEGER_FIELDS:
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return _Problem(f"{name} {value!r} is not a whole number")
        if name == "n" and value < 1:
            return _Problem(f"n {value} is not valid: use 1 or more")
        return value
    if name == "reference_images":
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list) or not all(isinstance(url, str) and url for url in urls):
            return _Problem(
                f"reference_images {value!r} is not valid: use a list of image URLs (in CSV, URLs separated "
                "by spaces)"
            )
        return urls or None
    if name == "resolution" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # 512 written as a JSON number
    if value is None:
        return None  # JSON null: the field is not given
    if not isinstance(value, str):
        return _Problem(f"{name} {value!r} is not valid: use a string")
    if name == "prompt" and not value.strip():
        return _Problem("the prompt is empty")
    return value


def _row_id(given: Any, position: int, digits: int) -> str | _Problem:
    if given is None or given == "":
        return str(position).zfill(digits)
    if isinstance(given, int) and not isinstance(given, bool):
        given = str(given)
    if not isinstance(given, str) or not ID_PATTERN.match(given):
        return _Problem(
            f"id {given!r} is not valid: it names the row's files, so use up to 100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return given


def _apply_defaults(body: dict[str, Any], defaults: Defaults) -> None:
    if defaults.model and "model" not in body:
        body["model"] = defaults.model
    # A row's own aspect_ratio is kept: a default --size would override it (size wins on the server).
    if defaults.size and "size" not in body and "aspect_ratio" not in body:
        body["size"] = defaults.size
    # A WxH size names its pixels and so its resolution: a default --resolution would contradict it.
    names_pixels = bool(re.fullmatch(r"\d+x\d+", str(body.get("size", ""))))
    if defaults.resolution and "resolution" not in body and not names_pixels:
        body["resolution"] = defaults.resolution
