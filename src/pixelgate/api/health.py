"""Liveness and readiness, for load balancers and orchestrators.

``/healthz``: the process is up and has finished starting (database, migrations, workers): restart it if
this stops answering. ``/readyz``: it can do its work now: the database answers, and the workers (where
this process runs them) are claiming tasks. A 503 says which check failed, so that traffic goes elsewhere
until it passes again.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pixelgate.api.deps import ServiceDep, WorkerDep
from pixelgate.api.responses import FastJSONResponse


async def ops_dialect(request: Request) -> None:
    """Probes and scrapes are counted apart from the image APIs (``dialect="ops"`` in /metrics)."""
    request.state.dialect = "ops"


router = APIRouter(dependencies=[Depends(ops_dialect)])
CHECK_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep, worker: WorkerDep) -> Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await service.queue.db.ping()
        checks["database"] = "ok"
    except TimeoutError:
        checks["database"] = f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # whatever the driver raises, the answer is the same: not ready
        checks["database"] = f"unreachable ({type(exc).__name__})"
    if worker is None:
        checks["workers"] = "not run by this process (--no-workers)"
    else:
        checks["workers"] = "running" if worker.alive else "stopped"
    ready = checks["database"] == "ok" and checks["workers"] != "stopped"
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return FastJSONResponse(body, status_code=200 if ready else 503)
