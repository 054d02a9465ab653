"""``GET /metrics``: Prometheus' text format (see ``core/metrics.py`` for what is counted).

With keys on, it takes the admin key (Prometheus sends it with ``authorization: {credentials: …}`` in its
scrape config): the page names models, channels and how much was spent.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pixelgate.api.auth import admin_only, authenticate
from pixelgate.api.deps import ServiceDep
from pixelgate.api.health import ops_dialect
from pixelgate.core import metrics
from pixelgate.core.task import Status
from pixelgate.routing import State

router = APIRouter(dependencies=[Depends(ops_dialect), Depends(authenticate), Depends(admin_only)])


@router.get("/metrics")
async def prometheus_metrics(service: ServiceDep) -> Response:
    counts = await service.queue.count_by_status()
    for status in (Status.QUEUED, Status.RUNNING):
        metrics.queue_depth.labels(status.value).set(counts.get(status.value, 0))
    for channel in service.router.describe():
        for state in State:
            metrics.channel_state.labels(channel["name"], state.value).set(int(channel["state"] == state))
        metrics.channel_in_flight.labels(channel["name"]).set(channel["in_flight"])
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
