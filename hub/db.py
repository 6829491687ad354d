"""The database layer: one metadata, engines for SQLite and PostgreSQL, and the two ways to touch data.

`Database.read()` hands out an autocommit connection (one statement, one snapshot, no BEGIN/ROLLBACK round
trips). `Database.write()` is one short transaction; on SQLite it begins IMMEDIATE so that a transaction that
reads and then writes takes the write lock up front instead of failing with SQLITE_BUSY on the upgrade.
Code that is synchronous by nature (authlib's server core) runs inside a write transaction through
`AsyncConnection.run_sync`, so there is one engine and one driver per backend; only alembic opens a sync engine.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
_WRITE = "hub_write"


def backend(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {name!r}: use sqlite:/// or postgresql://")
    if name == "postgresql" and not all(importlib.util.find_spec(m) for m in ("asyncpg", "psycopg")):
        raise ValueError("PostgreSQL needs its drivers: pip install 'hub[postgresql]'")
    return name


def async_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername=_ASYNC_DRIVERS[backend(url)]).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername=_SYNC_DRIVERS[backend(url)]).render_as_string(hide_password=False)


def _prepare_sqlite(engine: Engine) -> None:
    """Take transaction control away from pysqlite so that BEGIN is ours (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")


def _engine_kwargs(url: str, pool_size: int) -> dict[str, Any]:
    if backend(url) == "sqlite":
        return {}
    # A fixed pool: beyond it requests queue for a connection. Overflow connections were opened and closed on
    # every burst (measured: 7 % of a busy process's CPU in connecting and re-preparing statements).
    return {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": 10, "pool_pre_ping": False}


def create_sync_engine(url: str, *, pooled: bool = True) -> Engine:
    kwargs: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    engine = create_engine(sync_url(url), **kwargs)
    if backend(url) == "sqlite":
        _prepare_sqlite(engine)
    return engine


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.backend = backend(url)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **_engine_kwargs(url, pool_size))
        if self.backend == "sqlite":
            _prepare_sqlite(self.engine.sync_engine)
        # On PostgreSQL the autocommit connections are a pool of their own: switching a pooled connection to
        # autocommit and back on every checkout cost ~100 µs of CPU per statement (measured), on the hot path.
        self._reader = (
            create_async_engine(async_url(url), isolation_level="AUTOCOMMIT", **_engine_kwargs(url, pool_size))
            if self.backend == "postgresql"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._writer = self.engine.execution_options(**{_WRITE: True})

    @property
    def engines(self) -> list[AsyncEngine]:
        """Every engine this database hands connections out of (for instrumentation)."""
        return [self.engine] if self._reader.sync_engine is self.engine.sync_engine else [self.engine, self._reader]

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement that is its own transaction (a PostgreSQL function call)."""
        async with self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        await self._reader.dispose()
        await self.engine.dispose()


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")


def among(dialect: str, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`. On PostgreSQL as `IN (SELECT unnest(:array))`: one parameter instead of thousands
    rendered, and a hashed semi-join (a plain `= ANY(:array)` compares every scanned row with every element)."""
    items = list(values)
    if dialect == "postgresql":
        return column.in_(select(func.unnest(bindparam(None, items, type_=ARRAY(column.type)))).scalar_subquery())
    return column.in_(items)


async def reserve_ids(conn: AsyncConnection, table: Table, count: int) -> list[int]:
    """Ids for rows that other rows of a bulk write must point at before they are written."""
    if not count:
        return []
    if conn.dialect.name == "postgresql":
        sequence = f"{table.name}_id_seq"
        found = await conn.scalars(
            select(func.nextval(bindparam("sequence", sequence))).select_from(func.generate_series(1, count))
        )
        return list(found.all())
    # SQLite: the write transaction began IMMEDIATE, so no one else can take these ids meanwhile.
    top = int(await conn.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0)
    return list(range(top + 1, top + 1 + count))


async def bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once: COPY on PostgreSQL, executemany on SQLite. Every row has the same keys."""
    if rows:
        columns = list(rows[0])
        await _insert_records(conn, table, columns, [tuple(row[c] for c in columns) for row in rows])


async def bulk_insert_columns(conn: AsyncConnection, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Many rows given column by column, as a batch job computes them (numpy arrays turned into lists): no
    per-row dict in between. Every column has the same length."""
    await _insert_records(conn, table, list(columns), list(zip(*columns.values(), strict=True)))


async def _insert_records(
    conn: AsyncConnection, table: Table, columns: list[str], records: list[tuple[Any, ...]]
) -> None:
    if not records:
        return
    if conn.dialect.name != "postgresql":
        await conn.execute(insert(table), [dict(zip(columns, record, strict=True)) for record in records])
        return
    # JSON columns go as text, None included: SQLAlchemy's JSON type stores None as JSON null too.
    as_json = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    if as_json:
        records = [
            tuple(json.dumps(value) if i in as_json else value for i, value in enumerate(record)) for record in records
        ]
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(table.name, records=records, columns=columns)  # type: ignore[union-attr]
