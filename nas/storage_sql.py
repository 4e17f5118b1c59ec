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
        with self._engine.connect() as connection, contextlib.ExitStack() as pipelines:
            with connection.begin():  # commits while a pipeline is open: COMMIT goes with what is queued
                yield Transaction(connection, self._text, pipelines if self.postgres else None)

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
    """Statements on one connection, committed together when the :meth:`DriverSQL.transaction` block ends.

    On PostgreSQL the statements nothing reads back (:meth:`run_many`) wait in psycopg's pipeline and go to the
    server with the next statement that is read, or with COMMIT: one round trip, where each would take its own
    (0.3 to 0.9 ms apiece beside training on this machine's two cores).
    """

    def __init__(self, connection: sqlalchemy.Connection, text: Any, pipelines: contextlib.ExitStack | None):
        self._connection, self._text, self._pipelines = connection, text, pipelines
        self._queueing = False

    def run(self, sql: str, *params: Any) -> sqlalchemy.CursorResult:
        """The statement, its result read back."""
        if self._queueing:
            self._pipelines.close()  # what is queued goes first
            self._queueing = False
        return self._connection.exec_driver_sql(self._text(sql), params)

    def run_many(self, sql: str, rows: Sequence[tuple]) -> None:
        """The statement once per row, nothing read back."""
        if not rows:
            return
        if self._pipelines is not None and not self._queueing:
            self._pipelines.enter_context(self._connection.connection.driver_connection.pipeline())
            self._queueing = True
        self._connection.exec_driver_sql(self._text(sql), list(rows))


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ", ".join("?" * len(values))


@functools.lru_cache(maxsize=256)
def _format_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # psycopg's paramstyle; no statement here holds a literal ? or %


__all__ = ["DriverSQL", "ONE_STATEMENT", "Transaction", "marks"]
