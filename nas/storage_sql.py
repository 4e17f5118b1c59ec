"""The statements every trial makes, as SQL text run on the database driver's own connection.

SQLAlchemy spends Python on each statement it runs, even one given as text: 0.3
to 0.5 ms to build a Core statement (cache key, compiled-statement lookup, type
processing), and 0.09 ms of execution context, events and result set around the
driver's call for ``exec_driver_sql``. SQLite answers in a few microseconds and a
PostgreSQL round trip on the same machine takes 0.13 ms. The statements here go to
the driver's connection (psycopg or sqlite3), checked out of the engine's own pool,
and its errors come back as SQLAlchemy's (an ``IntegrityError``, say). They are
written once, in SQL that SQLite and PostgreSQL both read, over Optuna's tables as
its models define them: states and value types stored by name, times as naive UTC
(on SQLite, as the text SQLAlchemy writes).
"""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

import sqlalchemy


class Rows(list):
    """A statement's rows, as tuples."""

    def first(self) -> tuple | None:
        return self[0] if self else None

    def scalar(self) -> Any:
        return self[0][0] if self else None


class DriverSQL:
    """Runs SQL with ``?`` placeholders on an SQLite or PostgreSQL engine's connections.

    The connections run in the driver's autocommit mode while they are out of the
    pool: a read of one statement then needs no transaction (on PostgreSQL no BEGIN
    and ROLLBACK round trips, on SQLite no write lock, as WAL gives it a snapshot),
    and a transaction sends its own BEGIN and COMMIT (psycopg's BEGIN would cost a
    round trip of its own, even in a pipeline).
    """

    def __init__(self, engine: sqlalchemy.engine.Engine):
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"storage database {engine.dialect.name!r} is not supported; use SQLite or PostgreSQL")
        self.postgres = engine.dialect.name == "postgresql"
        self._engine = engine
        self._errors = _Errors(engine.dialect.loaded_dbapi.Error)

    def read(self, sql: str, *params: Any) -> Rows:
        with self._connection() as driver, self._errors.of(sql, params):
            return _rows(driver.execute(self._text(sql), params))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Statements committed together when the block ends, rolled back when it raises."""
        with self._connection() as driver:
            try:
                yield from (self._pipelined(driver) if self.postgres else self._immediate(driver))
            except BaseException:
                with contextlib.suppress(Exception):  # what raised says why; the connection is only made clean
                    driver.rollback()
                raise

    def _pipelined(self, driver: Any) -> Iterator[Transaction]:
        """A PostgreSQL transaction through psycopg's pipeline, BEGIN included: each statement is sent when a
        result is read or with COMMIT, with those queued before it."""
        with contextlib.ExitStack() as pipelined:
            pipeline = pipelined.enter_context(driver.pipeline())
            driver.execute("BEGIN")

            def commit() -> None:  # COMMIT queued behind the last statement; leaving the pipeline sends them and waits
                driver.execute("COMMIT")
                with self._errors.of("COMMIT", ()):
                    pipelined.close()

            transaction = Transaction(driver, self._text, self._errors, pipeline.sync, commit)
            yield transaction
            if not transaction.ended:
                commit()

    def _immediate(self, driver: Any) -> Iterator[Transaction]:
        """An SQLite transaction that takes the write lock as it begins (or waits for it up to the busy timeout):
        one that took it only at its first write would fail at once with "database is locked"."""
        with self._errors.of("BEGIN IMMEDIATE", ()):
            driver.execute("BEGIN IMMEDIATE")
        transaction = Transaction(driver, self._text, self._errors, None, None)
        yield transaction
        if not transaction.ended:  # run_last commits
            with self._errors.of("COMMIT", ()):
                driver.execute("COMMIT")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """The driver's connection, out of the engine's pool in autocommit mode, returned as it was found."""
        pooled = self._engine.raw_connection()
        driver = pooled.driver_connection
        try:
            if self.postgres:
                found, driver.autocommit = driver.autocommit, True
            else:
                found, driver.isolation_level = driver.isolation_level, None
            try:
                yield driver
            finally:
                with contextlib.suppress(Exception):  # a broken connection: the pool finds and drops it
                    if self.postgres:
                        driver.autocommit = found
                    else:
                        driver.isolation_level = found
        finally:
            pooled.close()

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

    def __init__(self, driver: Any, text: Callable[[str], str], errors: _Errors, send: Callable[[], None] | None,
                 commit: Callable[[], None] | None):
        self._driver, self._text, self._errors = driver, text, errors
        self._send, self._commit = send, commit  # on PostgreSQL: what sends the pipeline, without and with COMMIT
        self._writes: Any = None  # the cursor of the statements whose rows are not read
        self.ended = False  # its last statement ran, with COMMIT

    def run(self, sql: str, *params: Any) -> Rows:
        """The statement, its rows read back."""
        self._open()
        with self._errors.of(sql, params):
            cursor = self._driver.execute(self._text(sql), params)
            if self._send is not None:
                self._send()
            return _rows(cursor)

    def run_many(self, sql: str, rows: Sequence[tuple]) -> None:
        """The statement once per row, nothing read back."""
        self._open()
        if not rows:
            return
        if self._writes is None:  # one cursor for all: psycopg's take 0.02 ms each to make, twice that beside training
            self._writes = self._driver.cursor()
        with self._errors.of(sql, rows):
            if len(rows) == 1:  # executemany costs psycopg 0.1 ms more than execute for one row, less for 2 or more
                self._writes.execute(self._text(sql), rows[0])
            else:
                self._writes.executemany(self._text(sql), list(rows))

    def run_later(self, sql: str, *params: Any) -> Callable[[], Rows]:
        """The statement, its rows read back once the transaction has committed, by calling what it returns: on
        PostgreSQL it goes with what follows it, and takes no round trip of its own."""
        self._open()
        with self._errors.of(sql, params):
            cursor = self._driver.execute(self._text(sql), params)
            if self._send is None:  # SQLite answers at once
                rows = _rows(cursor)
                return lambda: rows
        return functools.cache(lambda: _rows(cursor))  # a cursor's rows are read once

    def run_last(self, sql: str, *params: Any) -> Rows:
        """The transaction's last statement, its rows read back as the transaction commits: on PostgreSQL it
        goes with COMMIT and everything queued before it, in one round trip."""
        self._open()
        self.ended = True
        with self._errors.of(sql, params):
            cursor = self._driver.execute(self._text(sql), params)
            if self._commit is None:
                rows = _rows(cursor)
                self._driver.execute("COMMIT")
                return rows
            self._commit()
            return _rows(cursor)

    def _open(self) -> None:
        if self.ended:
            raise RuntimeError("no statement can follow a transaction's last one")


def _rows(cursor: Any) -> Rows:
    """The rows a statement returned (none for one that returns none), read from its cursor."""
    return Rows(cursor.fetchall() if cursor.description is not None else ())


def marks(values: Sequence[Any]) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ", ".join("?" * len(values))


class _Errors:
    """The driver's errors raised as SQLAlchemy's, as its engine raises them (``IntegrityError`` and so on)."""

    def __init__(self, base: type[Exception]):
        self._base = base  # the driver's DB-API ``Error``

    @contextlib.contextmanager
    def of(self, sql: str, params: Any) -> Iterator[None]:
        try:
            yield
        except self._base as err:
            raise sqlalchemy.exc.DBAPIError.instance(sql, params, err, self._base) from err


@functools.lru_cache(maxsize=256)
def _format_placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # psycopg's paramstyle; no statement here holds a literal ? or %


__all__ = ["DriverSQL", "Rows", "Transaction", "marks"]
