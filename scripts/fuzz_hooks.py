"""Schemathesis hooks for ``scripts/fuzz.py`` (loaded through ``SCHEMATHESIS_HOOKS=fuzz_hooks``) and for the
bounded run in ``tests/test_openapi_fuzz.py`` (imported).

- Real ids: a generated path parameter or query value is, about half of the time, swapped for the id of
  something that exists (a task, an interaction, a batch, a file, a webhook, a delivery, a key, a model, a
  channel, a signed image URL), so that cases get past "no such id" into the code behind it. The ids come
  from ``PIXELGATE_FUZZ_IDS`` (JSON, as :func:`fuzz.make_ids` writes them) or :func:`use_ids`.
- A channel a case disables is enabled again at once (else every later generation is a 503, by design).
- Counts: every response is counted, and each one of 500 or more is recorded (method, path, status, the
  start of its body), into ``PIXELGATE_FUZZ_COUNTS`` (JSON) when that is set.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st

IDS: dict[str, list[str]] = json.loads(os.environ.get("PIXELGATE_FUZZ_IDS") or "{}")
COUNTS_PATH = os.environ.get("PIXELGATE_FUZZ_COUNTS")
COUNTS: dict[str, Any] = {"requests": 0, "server_errors": 0, "errors": [], "statuses": {}}
_LOCK = threading.Lock()


def use_ids(ids: dict[str, list[str]]) -> None:
    IDS.clear()
    IDS.update(ids)


# Which ids fit a parameter, by its name (a ``name`` or a cursor depends on the path too: see real_values).
POOLS = {
    "task_id": ("tasks",),
    "interaction_id": ("tasks",),
    "subject_id": ("tasks", "batches"),
    "batch_id": ("batches",),
    "file_id": ("files",),
    "webhook_id": ("webhooks",),
    "delivery_id": ("deliveries",),
    "key_id": ("keys",),
    "model": ("models",),
    "model_id": ("models",),
    "owner": ("owners",),
    "version": ("versions",),
}


def real_values(path: str, name: str) -> list[str]:
    """The existing ids that fit parameter ``name`` of the operation at ``path``."""

    def ids(*kinds: str) -> list[str]:
        return [value for kind in kinds for value in IDS.get(kind, [])]

    if name in POOLS:
        return ids(*POOLS[name])
    if name == "model_action":
        actions = ("generateContent", "streamGenerateContent", "batchGenerateContent", "countTokens")
        return [f"{model}:{action}" for model in ids("models") for action in actions]
    if name == "name":
        if "/batches/" in path:
            return ids("batches") + [f"{batch}:cancel" for batch in ids("batches")]
        if "/files/" in path:
            return ids("files") + [f"{file}:download" for file in ids("files")]
        if "/channels/" in path and not path.endswith("/disable"):  # a disabled channel answers 503s
            return ids("channels")
        if "/models/" in path:
            return ids("models")
    if name == "channel":
        return ids("channels")
    if name in ("after", "pageToken", "page_token"):
        kind = next((k for k in ("batches", "files", "webhooks", "deliveries", "tasks") if k in path), None)
        return ids(kind) if kind else []
    return []


def _signed_image(path: str, generated: dict[str, Any]) -> dict[str, Any] | None:
    """A signed image URL's path parameters or query, whichever ``generated`` is, for ``/blobs/…``."""
    blob = IDS.get("blob")
    if not path.startswith("/blobs/") or not blob:
        return None
    task_id, name, expires, signature = blob
    if "task_id" in generated:
        return {**generated, "task_id": task_id, "name": name}
    return {**generated, "expires": expires, "signature": signature}


def _with_real_ids(context: Any, generated: Any) -> st.SearchStrategy[Any]:
    if not isinstance(generated, dict) or not generated or not IDS:
        return st.just(generated)
    path = context.operation.path if context.operation is not None else ""
    signed = _signed_image(path, generated)
    if signed is not None:
        return st.just(generated) | st.just(signed)
    real = {name: values for name in generated if (values := real_values(path, name))}
    if not real:
        return st.just(generated)
    swapped = st.fixed_dictionaries(
        {
            name: st.sampled_from(real[name]) if name in real else st.just(value)
            for name, value in generated.items()
        }
    )
    return st.just(generated) | swapped


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    return _with_real_ids(context, path_parameters)


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    return _with_real_ids(context, query)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if case.operation.path == "/admin/channels/{name}/disable" and response.status_code == 200:
        # A disabled channel is the admin's will: every generation after it would be a 503, by design,
        # hiding what the rest of the run finds. It is enabled again at once.
        httpx.post(str(response.request.url).rsplit("/", 1)[0] + "/enable", timeout=30)
    with _LOCK:
        COUNTS["requests"] += 1
        status = str(response.status_code)
        COUNTS["statuses"][status] = COUNTS["statuses"].get(status, 0) + 1
        if response.status_code >= 500:
            COUNTS["server_errors"] += 1
            if len(COUNTS["errors"]) < 200:
                COUNTS["errors"].append(
                    {
                        "method": case.method,
                        "path": case.formatted_path,
                        "query": case.query,
                        "status": response.status_code,
                        "body": response.text[:300],
                    }
                )
        if COUNTS["requests"] % 500 == 0:
            _save()


def _save() -> None:
    if COUNTS_PATH:
        with open(COUNTS_PATH, "w") as out:
            json.dump(COUNTS, out, default=repr)


atexit.register(lambda: _save())
