"""``Database.read`` and ``Database.write``, the one-step runs of the hot path's SQL, on SQLite and PostgreSQL:
a write is one transaction (all of it or none), many at once all land, and a read sees what was committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pixelgate.store.schema import meta
from pixelgate.tasks.queue import TaskQueue


def put(conn: Connection, key: str, value: str) -> None:
    conn.execute(meta.insert().values(key=key, value=value))


def value_of(key: str) -> Callable[[Connection], str | None]:
    return lambda conn: conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()


async def test_a_write_is_committed_whole_and_returns_what_its_function_returned(queue: TaskQueue) -> None:
    db = queue.db

    def two_rows(conn: Connection) -> str:
        put(conn, "first", "1")
        put(conn, "second", "2")
        return "done"

    assert await db.write(two_rows) == "done"
    assert (await db.read(value_of("first")), await db.read(value_of("second"))) == ("1", "2")


async def test_a_write_that_raises_leaves_nothing_and_raises_the_same_error(queue: TaskQueue) -> None:
    db = queue.db

    class Refused(Exception):
        pass

    def half_then_refused(conn: Connection) -> None:
        put(conn, "half", "1")
        raise Refused("the second half is refused")

    with pytest.raises(Refused, match="second half"):
        await db.write(half_then_refused)
    assert await db.read(value_of("half")) is None
    # A statement the database refuses is raised as the driver's error, and the connection is usable after.
    await db.write(lambda conn: put(conn, "taken", "1"))
    with pytest.raises(sa.exc.IntegrityError):
        await db.write(lambda conn: put(conn, "taken", "2"))
    assert await db.read(value_of("taken")) == "1"


async def test_many_writes_and_reads_at_once_all_land(queue: TaskQueue) -> None:
    """SQLite takes one writer at a time: this process's writers take turns rather than spinning in its busy
    handler, and reads go on beside them."""
    db = queue.db
    await db.write(lambda conn: put(conn, "counter", "0"))

    def bump(conn: Connection, number: int) -> None:
        put(conn, f"row-{number}", str(number))
        conn.execute(
            meta.update()
            .where(meta.c.key == "counter")
            .values(value=sa.cast(sa.cast(meta.c.value, sa.Integer) + 1, sa.Text))
        )

    async def writer(number: int) -> None:
        await db.write(lambda conn: bump(conn, number))

    async def reader() -> int:
        return int(await db.read(value_of("counter")) or -1)

    seen = await asyncio.gather(*(reader() for _ in range(60)), *(writer(n) for n in range(60)))
    assert all(isinstance(count, int) and 0 <= count <= 60 for count in seen[:60]), "a committed count"
    assert await db.read(value_of("counter")) == "60"
    rows = await db.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).where(meta.c.key.like("row-%"))).scalar()
    )
    assert rows == 60


async def test_a_write_asked_for_during_a_transaction_runs_after_it(queue: TaskQueue) -> None:
    """On SQLite a transaction (the aiosqlite path of the rest of the code) and the writes take turns."""
    db = queue.db
    async with db.transaction() as conn:
        await conn.execute(meta.insert().values(key="in-transaction", value="1"))
        after = asyncio.ensure_future(db.write(lambda conn: put(conn, "after", "1")))
        await asyncio.sleep(0.1)
        if not db.is_postgres:
            assert not after.done(), "the write waits for the transaction"
    await asyncio.wait_for(after, 10)


async def test_a_transaction_cancelled_while_it_waits_its_turn_leaves_nothing_held(queue: TaskQueue) -> None:
    db = queue.db
    if db.is_postgres:
        pytest.skip("PostgreSQL's transactions do not wait for a turn of this process's")

    async def transaction_for(seconds: float) -> None:
        async with db.transaction() as conn:
            await conn.execute(sa.select(1))
            await asyncio.sleep(seconds)

    holding = asyncio.ensure_future(transaction_for(0.3))
    await asyncio.sleep(0.05)
    in_line = asyncio.ensure_future(transaction_for(0))
    await asyncio.sleep(0.05)
    in_line.cancel()
    await holding
    with pytest.raises(asyncio.CancelledError):
        await in_line
    await asyncio.wait_for(db.write(lambda conn: put(conn, "still", "1")), 10)
    assert await db.read(value_of("still")) == "1"
