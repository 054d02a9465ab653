"""Named leases that one process holds at a time, across hosts, in the shared database: work that must run
once for the whole deployment (the retention janitor) runs in whichever process holds its lease.

A lease is taken or renewed by one upsert that succeeds only where the row is free, expired or already
this holder's, so two processes never both hold it; a holder that dies simply stops renewing, and the
lease passes on once it runs out.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pixelgate.store.db import Database
from pixelgate.store.schema import leases


class Leases:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def hold(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` for ``seconds``; whether ``holder`` holds it now."""
        now = time.time()
        insert = (postgres_insert if self.db.is_postgres else sqlite_insert)(leases)
        statement = (
            insert.values(name=name, holder=holder, expires_at=now + seconds)
            .on_conflict_do_update(
                index_elements=[leases.c.name],
                set_={"holder": holder, "expires_at": now + seconds},
                where=sa.or_(leases.c.holder == holder, leases.c.expires_at < now),
            )
            .returning(leases.c.holder)
        )
        async with self.db.transaction() as conn:
            return (await conn.execute(statement)).first() is not None

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up (at a graceful stop), so that another process takes it at once."""
        async with self.db.transaction() as conn:
            await conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    async def holder(self, name: str) -> str | None:
        """Who holds lease ``name`` now, if anyone."""
        query = sa.select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at >= time.time())
        async with self.db.engine.connect() as conn:
            return (await conn.execute(query)).scalar()
