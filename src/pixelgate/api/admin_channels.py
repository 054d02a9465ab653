"""The channels as the running server sees them, and the admin's hand on them (admin key).

GET  /admin/channels                  -> every channel: its live state (ready, rate_limited, cooling_down,
                                         half_open, probing, disabled) and until when, failures in a row,
                                         requests in flight and the limit, requests and errors by kind since
                                         this process started, the last error (the channel's key redacted)
GET  /admin/channels/{name}
POST /admin/channels/{name}/reset     -> its breaker closed: back in rotation now
POST /admin/channels/{name}/disable   {reason?}: out of rotation until enabled (also across restarts)
POST /admin/channels/{name}/enable

The state and figures are this process's (each process has its own breakers, and says who it is in
``process``); disable, enable and reset reach every process sharing the database within ``poll_interval``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from pixelgate.api.admin import PRINTABLE
from pixelgate.api.auth import admin_only, authenticate
from pixelgate.api.deps import ControlsDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.parsing import parse_model, read_json_object
from pixelgate.routing import ChannelControls
from pixelgate.store.schema import channel_controls, column_chars

router = APIRouter(
    prefix="/admin/channels",
    dependencies=[Depends(openai_dialect), Depends(authenticate), Depends(admin_only)],
)
PROCESS = f"{socket.gethostname()}-{os.getpid()}"


class Disabling(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(
        None, min_length=1, max_length=column_chars(channel_controls.c.disabled_reason), pattern=PRINTABLE
    )


def _described(controls: ChannelControls, name: str) -> dict[str, Any]:
    channel = controls.router.channel(name)
    return next(d for d in controls.router.describe() if d["name"] == channel.name)


@router.get("")
async def list_channels(controls: ControlsDep) -> dict[str, Any]:
    return {"object": "list", "process": PROCESS, "data": controls.router.describe()}


@router.get("/{name}")
async def get_channel(name: str, controls: ControlsDep) -> dict[str, Any]:
    return _described(controls, name)


@router.post("/{name}/reset")
async def reset_channel(name: str, controls: ControlsDep) -> dict[str, Any]:
    await controls.reset(name)
    return _described(controls, name)


@router.post("/{name}/disable")
async def disable_channel(name: str, request: Request, controls: ControlsDep) -> dict[str, Any]:
    # The body is optional: a bare POST disables with no reason.
    body = parse_model(Disabling, await read_json_object(request)) if await request.body() else Disabling()
    await controls.disable(name, body.reason)
    return _described(controls, name)


@router.post("/{name}/enable")
async def enable_channel(name: str, controls: ControlsDep) -> dict[str, Any]:
    await controls.enable(name)
    return _described(controls, name)
