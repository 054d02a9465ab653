"""The database: SQLite under the data dir by default, PostgreSQL at scale; one code path for both.

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, so that several worker
processes can share one file; transactions are kept short everywhere.

The hot path's statements (accepting, claiming and ending a task; a task's poll) go through
:meth:`Database.write` and :meth:`Database.read`: a plain function of a connection, run in one step. On
SQLite that is one hop to a thread with its own synchronous connection, where aiosqlite makes three or four
per statement and two more per transaction (cursor, execute, fetch, close, commit, rollback: each a wake-up
of its thread and of the event loop; a one-row read took 0.7 ms of CPU that way against 0.28 ms). SQLite
writes one transaction at a time, so a write that waits a turn of a busy event loop at each hop holds every
other writer up as well. On PostgreSQL both are ``run_sync`` on the async driver.
"""

from __future__ import annotations

import asyncio
import fcntl
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pixelgate.store.schema import meta

# An arbitrary, fixed key for PostgreSQL's advisory lock around migrations.
_MIGRATION_LOCK_KEY = 0x70786C67
# SQLite's reading threads: reads in WAL mode run side by side, and sqlite3 lets go of the GIL while it
# reads, but more threads than this only contend for the GIL.
_SQLITE_READERS = 4

T = TypeVar("T")


def listed_after(table: sa.Table, created_at: float, row_id: str, *, newest_first: bool = True) -> Any:
    """The rows a listing ordered by (created_at, id) shows after the row (``created_at``, ``row_id``):
    how a page continues from the last id of the page before."""
    key, anchor = sa.tuple_(table.c.created_at, table.c.id), sa.tuple_(created_at, row_id)
    return key < anchor if newest_first else key > anchor


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'pixelgate.db').resolve()}"


class Database:
    def __init__(self, engine: AsyncEngine, *, sqlite_sync: sa.Engine | None = None) -> None:
        """``sqlite_sync``: a synchronous engine on the same SQLite file, for :meth:`read` and :meth:`write`."""
        self.engine = engine
        self._sqlite_sync = sqlite_sync
        self._reading_threads = ThreadPoolExecutor(_SQLITE_READERS, thread_name_prefix="sqlite-read")
        # SQLite lets one connection write at a time; the others spin in its busy handler, sleeping up to
        # 100 ms a try. This process's writes take turns on one thread instead, each started the moment the
        # one before has committed. Handing a lock of the event loop's from one writer to the next took a
        # turn of the loop each time, and on a loop busy answering polls that was what held writers up
        # (10,000 tasks in flight: the whole run took half as long again). See :meth:`transaction`.
        self._writing_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")

    @property
    def sync_engines(self) -> tuple[sa.Engine, ...]:
        """Every engine that runs this database's statements (for listening to them all)."""
        return (self.engine.sync_engine,) + ((self._sqlite_sync,) if self._sqlite_sync else ())

    async def read(self, query: Callable[[Connection], T]) -> T:
        """``query(connection)`` run in one step, outside any transaction of this process's (see the
        module's doc). ``query`` must do nothing but talk to the database."""
        return await self._in_one_step(query, writes=False)

    async def write(self, change: Callable[[Connection], T]) -> T:
        """``change(connection)`` run in one step in a transaction of its own: committed if it returns,
        rolled back if it raises (what it raised is raised here). ``change`` must do nothing but talk to
        the database. Once started it runs to its end even if its caller is cancelled meanwhile."""
        return await self._in_one_step(change, writes=True)

    async def _in_one_step(self, work: Callable[[Connection], T], *, writes: bool) -> T:
        if self._sqlite_sync is None:
            async with self.engine.begin() if writes else self.engine.connect() as conn:
                return await conn.run_sync(work)
        engine = self._sqlite_sync

        def run() -> T:
            with engine.begin() if writes else engine.connect() as conn:
                return work(conn)

        threads = self._writing_thread if writes else self._reading_threads
        return await asyncio.get_running_loop().run_in_executor(threads, run)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that writes: committed on success, rolled back on an error. On SQLite it holds the
        writing thread while it runs (the writes before it have committed, the ones after it wait), so that
        it takes its turn with :meth:`write`'s. Never call :meth:`write` inside one: it would wait for it."""
        if self._sqlite_sync is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        my_turn: asyncio.Future[None] = loop.create_future()
        over = threading.Event()

        def hold() -> None:
            loop.call_soon_threadsafe(_resolve, my_turn)
            over.wait()

        self._writing_thread.submit(hold)
        try:
            await my_turn
            async with self.engine.begin() as conn:
                yield conn
        finally:
            over.set()  # also when cancelled before its turn came: the thread then goes straight on

    async def ping(self) -> None:
        """Raise unless the database answers a query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @classmethod
    async def open(
        cls, url: str, *, data_dir: Path, pool_size: int = 5, max_connections: int = 20
    ) -> Database:
        """Connect and bring the schema up to date. At most ``max_connections`` per process, on PostgreSQL
        ``pool_size`` of them kept while idle (SQLite keeps them all): a burst waits for a connection
        rather than exhausting the server's (a PostgreSQL shared by several processes has a hundred in all
        by default)."""
        if url.startswith("sqlite"):
            # Every connection is kept: an SQLite connection is a thread (aiosqlite), and a pool that
            # closes its overflow after each burst starts threads again in the next one, which stalls the
            # event loop while each one starts (up to 2 s seen with a thousand tasks in flight).
            engine = create_async_engine(url, pool_size=max_connections, max_overflow=0)
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            sync = sa.create_engine(
                url.replace("+aiosqlite", "", 1),
                pool_size=_SQLITE_READERS + 1,
                max_overflow=0,
                connect_args={"check_same_thread": False},  # a connection serves whichever thread is free
            )
            sa.event.listen(sync, "connect", _sqlite_pragmas)
            db = cls(engine, sqlite_sync=sync)
        else:
            pool_size = min(pool_size, max_connections)
            overflow = max_connections - pool_size
            engine = create_async_engine(url, pool_size=pool_size, max_overflow=overflow, pool_pre_ping=True)
            db = cls(engine)
        await db.migrate(data_dir)
        return db

    async def migrate(self, data_dir: Path) -> None:
        if self.is_postgres:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                await conn.run_sync(_upgrade)
            return
        # SQLite: processes on one machine share the file, so a file lock serialises their migrations.
        lock_path = data_dir / ".migrate.lock"
        lock = await asyncio.to_thread(_acquire_file_lock, lock_path)
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_upgrade)
        finally:
            lock.close()

    async def close(self) -> None:
        await self.engine.dispose()
        for threads in (self._reading_threads, self._writing_thread):
            await asyncio.to_thread(threads.shutdown)
        if self._sqlite_sync is not None:
            self._sqlite_sync.dispose()

    async def secret(self, name: str) -> str:
        """A random secret kept in the database, made on first use and shared by every process."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == name))
        if found is not None:
            return str(found)
        await self.put_meta_once(name, secrets.token_hex(32))
        async with self.engine.connect() as conn:
            return str(await conn.scalar(sa.select(meta.c.value).where(meta.c.key == name)))

    def insert(self, table: sa.Table) -> Any:
        """An INSERT of this database's dialect, which offers ``on_conflict_do_nothing`` (both do)."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as postgres_insert

            return postgres_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    async def put_meta_once(self, name: str, value: str) -> bool:
        """Keep ``value`` under ``name`` unless a value is there already (another process may have
        been first); whether this one was kept."""
        async with self.transaction() as conn:
            outcome = await conn.execute(
                self.insert(meta).values(key=name, value=value).on_conflict_do_nothing()
            )
        return bool(outcome.rowcount)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a transaction cancelled while it waited for its turn
        future.set_result(None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _acquire_file_lock(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", "pixelgate.store:migrations")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
