"""The admin's hand on the channels: disable, enable and reset, for every process that shares the database.

A change is written to ``channel_controls`` (one row per channel name) and applied at once in the process
that made it; every other process reads the table each ``poll_interval`` (1 s by default) and follows. A
reset is a counter rather than a time, so that hosts whose clocks disagree still apply each one exactly once.
A row naming a channel this process does not have (its channel file differs) is ignored here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import sqlalchemy as sa

from pixelgate.routing.channel import Disabled
from pixelgate.routing.router import Router
from pixelgate.store.db import Database
from pixelgate.store.schema import channel_controls

log = logging.getLogger("pixelgate.routing")


class ChannelControls:
    def __init__(self, db: Database, router: Router, *, poll_interval: float) -> None:
        self.db = db
        self.router = router
        self.poll_interval = poll_interval
        self._resets_seen: dict[str, int] = {}
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow the table: the state it holds now (a disabled channel stays out after a restart), then
        its changes. Resets made before this process started have nothing left to reset."""
        for row in await self._rows():
            self._resets_seen[row.name] = row.resets
        await self.refresh()
        self._loop = asyncio.create_task(self._follow(), name="pixelgate-channel-controls")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def disable(self, name: str, reason: str | None) -> None:
        self.router.channel(name)  # an unknown name is a 404 before anything is written
        now = time.time()
        await self._upsert(name, disabled_at=now, disabled_reason=reason)
        self.router.disable(name, Disabled(at=now, reason=reason))
        log.warning("channel %s disabled by the admin%s", name, f": {reason}" if reason else "")

    async def enable(self, name: str) -> None:
        self.router.channel(name)
        await self._upsert(name, disabled_at=None, disabled_reason=None)
        self.router.enable(name)
        log.warning("channel %s enabled by the admin", name)

    async def reset(self, name: str) -> None:
        self.router.channel(name)
        resets = await self._upsert(name, resets=channel_controls.c.resets + 1)
        self._resets_seen[name] = resets
        self.router.reset(name)
        log.warning("channel %s reset by the admin: its breaker is closed", name)

    async def refresh(self) -> None:
        """Apply what the table says now."""
        known = {c.name: c for c in self.router.channels}
        for row in await self._rows():
            channel = known.get(row.name)
            if channel is None:
                continue
            if row.disabled_at is None:
                channel.disabled = None
            elif channel.disabled is None or channel.disabled.at != row.disabled_at:
                self.router.disable(row.name, Disabled(at=row.disabled_at, reason=row.disabled_reason))
            if row.resets > self._resets_seen.get(row.name, 0):
                self._resets_seen[row.name] = row.resets
                self.router.reset(row.name)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
            except Exception:  # the database is away for a moment: the next poll tries again
                log.exception("reading the channel controls failed")

    async def _rows(self) -> list[Any]:
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(sa.select(channel_controls))).all())

    async def _upsert(self, name: str, **values: Any) -> int:
        """Change ``name``'s row (made first if there is none); its reset count after the change."""
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute(
                self.db.insert(channel_controls)
                .values(name=name, resets=0, updated_at=now)
                .on_conflict_do_nothing()
            )
            await conn.execute(
                channel_controls.update()
                .where(channel_controls.c.name == name)
                .values(updated_at=now, **values)
            )
            resets = await conn.scalar(
                sa.select(channel_controls.c.resets).where(channel_controls.c.name == name)
            )
        return int(resets or 0)
