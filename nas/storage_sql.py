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
from typing import Any, Callable, Iterator, Sequence

import sqlalchemy

ONE_STATEMENT = "nas_one_statement"  # execution option of reads made of one statement: they need no transaction
_SEND_FIRST = "nas_send_first"  # execution option: what sends psycopg's pipeline, before SQLAlchemy reads a result


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
        if self.postgres:
            # psycopg sends its own BEGIN and waits for it, even in a pipeline: a round trip of its own. Transactions
            # here send BEGIN and COMMIT as statements of their own, in the pipeline, from an autocommit connection.
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            if not sqlalchemy.event.contains(engine, "after_cursor_execute", _sync_before_reading):
                sqlalchemy.event.listen(engine, "after_cursor_execute", _sync_before_reading)

    def read(self, sql: str, *params: Any) -> list[sqlalchemy.Row]:
        with self._reads.connect() as connection:
            return connection.exec_driver_sql(self._text(sql), params).all()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._engine.connect() as connection, connection.begin():
            if not self.postgres:
                yield Transaction(connection, self._text, None, None)
                return
            # SQLAlchemy's begin above keeps its events, and its rollback on an error: psycopg then sends ROLLBACK, as
            # the server's transaction is open. BEGIN and COMMIT go through the pipeline.
            driver = connection.connection.driver_connection
            with contextlib.ExitStack() as pipelined:
                pipeline = pipelined.enter_context(driver.pipeline())
                connection.exec_driver_sql("BEGIN")

                def commit() -> None:  # COMMIT queued behind the last statement; leaving the pipeline sends them
                    driver.execute("COMMIT")
                    pipelined.close()

                transaction = Transaction(connection, self._text, pipeline.sync, commit)
                yield transaction
                if not transaction.ended:
                    # Leaving the pipeline sends what waits in it and COMMIT, and waits for them: one round trip.
                    connection.exec_driver_sql("COMMIT", execution_options={_SEND_FIRST: pipelined.close})

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

    On PostgreSQL they go through psycopg's pipeline: each is sent when a result is read (:meth:`run`) or with
    COMMIT, with those queued before it, so a transaction that reads once takes two round trips (0.3 to 0.9 ms
    apiece beside training on this machine's two cores) however many statements it has; one whose only read is
    its last statement (:meth:`run_last`) takes one.
    """

    def __init__(self, connection: sqlalchemy.Connection, text: Any, send: Callable[[], None] | None,
                 commit: Callable[[], None] | None):
        self._connection, self._text = connection, text
        self._reading = {} if send is None else {_SEND_FIRST: send}
        self._commit = commit
        self.ended = False  # its last statement ran: on PostgreSQL, with COMMIT

    def run(self, sql: str, *params: Any) -> sqlalchemy.CursorResult:
        """The statement, its result read back."""
        return self._connection.exec_driver_sql(self._text(sql), params, execution_options=self._open())

    def run_many(self, sql: str, rows: Sequence[tuple]) -> None:
        """The statement once per row, nothing read back."""
        self._open()
        if rows:
            self._connection.exec_driver_sql(self._text(sql), list(rows))

    def run_last(self, sql: str, *params: Any) -> sqlalchemy.CursorResult:
        """The transaction's last statement, its result read back as the transaction commits: on PostgreSQL it
        goes with COMMIT and everything queued before it, in one round trip."""
        options = self._open() if self._commit is None else {**self._open(), _SEND_FIRST: self._commit}
        self.ended = True
        return self._connection.exec_driver_sql(self._text(sql), params, execution_options=options)

    def _open(self) -> dict[str, Any]:
        if self.ended:
            raise RuntimeError("no statement can follow a transaction's last one")
        return self._reading


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ", ".join("?" * len(values))


def _sync_before_reading(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                         executemany: bool) -> None:
    """A statement whose result is read, sent with what waits in the pipeline before SQLAlchemy reads it; an error
    of any of them is raised here, as SQLAlchemy's own (an ``IntegrityError``, say)."""
    send = context.execution_options.get(_SEND_FIRST)
    if send is not None:
        send()


@functools.lru_cache(maxsize=256)
def _format_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # psycopg's paramstyle; no statement here holds a literal ? or %


__all__ = ["DriverSQL", "ONE_STATEMENT", "Transaction", "marks"]
