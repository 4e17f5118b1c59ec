"""The statements every trial makes, as SQL text the database driver runs as it is.

SQLAlchemy's Core spends 0.3 to 0.5 ms of Python on each statement it builds (its
cache key, the compiled-statement lookup, type processing): ten times what SQLite
takes to answer, and more than a PostgreSQL round trip on the same machine. Text run
with ``exec_driver_sql`` goes to the driver at once, in the engine's own connections,
transactions and events. It is written once, in SQL that SQLite and PostgreSQL both
read, over Optuna's tables as its models define them: states and value types stored
by name, times as naive UTC (on SQLite, as the text SQLAlchemy writes).
"""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import sqlalchemy

ONE_STATEMENT = "nas_one_statement"  # execution option of reads made of one statement: they need no transaction


class DriverSQL:
    """Runs SQL with ``?`` placeholders on an SQLite or PostgreSQL engine."""

    def __init__(self, engine: sqlalchemy.engine.Engine):
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"storage database {engine.dialect.name!r} is not supported; use SQLite or PostgreSQL")
        self.postgres = engine.dialect.name == "postgresql"
        self._engine = engine
        # A read of one statement needs no transaction: on PostgreSQL autocommit saves the BEGIN and ROLLBACK round
        # trips, on SQLite no BEGIN IMMEDIATE (see nas.study) takes the write lock for it; WAL gives it a snapshot.
        self._reads = engine.execution_options(
            **{ONE_STATEMENT: True}, **({"isolation_level": "AUTOCOMMIT"} if self.postgres else {}))

    def read(self, sql: str, *params: Any) -> list[sqlalchemy.Row]:
        with self._reads.connect() as connection:
            return connection.exec_driver_sql(self._text(sql), params).all()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._engine.begin() as connection:
            yield Transaction(connection, self._text)

    def stamp(self, moment: datetime) -> Any:
        """``moment`` as Optuna stores it: naive UTC."""
        utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
        return utc if self.postgres else utc.strftime("%Y-%m-%d %H:%M:%S.%f")

    @staticmethod
    def moment(stored: Any) -> datetime:
        """A stored time, read back (SQLite's is text)."""
        return stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)

    def _text(self, sql: str) -> str:
        return _format_placeholders(sql) if self.postgres else sql


class Transaction:
    """Statements on one connection, committed together when the :meth:`DriverSQL.transaction` block ends."""

    def __init__(self, connection: sqlalchemy.Connection, text: Any):
        self._connection, self._text = connection, text

    def run(self, sql: str, *params: Any) -> sqlalchemy.CursorResult:
        return self._connection.exec_driver_sql(self._text(sql), params)

    def run_many(self, sql: str, rows: Sequence[tuple]) -> None:
        if rows:
            self._connection.exec_driver_sql(self._text(sql), list(rows))


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ", ".join("?" * len(values))


@functools.lru_cache(maxsize=256)
def _format_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # psycopg's paramstyle; no statement here holds a literal ? or %


__all__ = ["DriverSQL", "ONE_STATEMENT", "Transaction", "marks"]
