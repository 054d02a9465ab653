"""The operator's console: a page at ``/console`` that shows spend over time, keys, channels, tasks and
batches, and steers them, through the documented admin API only (the admin key, entered once, is kept for
the browser tab). Plain HTML, CSS and JavaScript modules under ``console/``, served as they are; charts are
SVG drawn by ``charts.js``: nothing to build, nothing vendored."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "console"

router = APIRouter()


@router.get("/console", include_in_schema=False)
async def console() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def install_console(app: FastAPI) -> None:
    """``/console`` is the page; ``/console/`` is the page too, and its files below it."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")
