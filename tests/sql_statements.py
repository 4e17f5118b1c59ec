"""What an engine's connections run: every statement, and the tables each committed transaction wrote.

The storage's own statements go to the driver past SQLAlchemy (``nas.storage_sql``), so
its events do not see them: statements are seen where the driver runs them, on each
connection the engine's pool hands out (SQLite's trace callback; psycopg's cursors).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import sqlalchemy

WRITTEN_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
ENDS = re.compile(r"^\s*(COMMIT|ROLLBACK)\b", re.IGNORECASE)


class Statements:
    """Listens on ``engine``'s connections (every thread using it) from the moment it is made."""

    def __init__(self, engine: sqlalchemy.engine.Engine):
        self.sql: list[str] = []
        self.commits: list[set[str]] = []  # tables written, per transaction that wrote any
        self._written: dict[int, set[str]] = defaultdict(set)  # per connection, since its transaction began
        self._postgres = engine.dialect.name == "postgresql"
        sqlalchemy.event.listen(engine, "checkout", self._checkout)
        if self._postgres:  # psycopg sends the COMMIT and ROLLBACK of SQLAlchemy's own transactions past its cursors
            sqlalchemy.event.listen(engine, "commit", lambda conn: self._end(conn.connection.driver_connection, True))
            sqlalchemy.event.listen(engine, "rollback", lambda conn: self._end(conn.connection.driver_connection, False))

    def writes_to(self, *tables: str) -> int:
        """How many committed transactions wrote to any of ``tables``."""
        return sum(bool(written & set(tables)) for written in self.commits)

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if self._postgres:
            dbapi_connection.cursor_factory = _traced_cursor(self)
        else:
            dbapi_connection.set_trace_callback(lambda sql: self._statement(dbapi_connection, sql))

    def _statement(self, connection: Any, sql: str) -> None:
        self.sql.append(sql)
        if match := WRITTEN_TABLE.match(sql):
            self._written[id(connection)].add(match.group(1).strip('"'))
        elif match := ENDS.match(sql):
            self._end(connection, match.group(1).upper() == "COMMIT")

    def _end(self, connection: Any, committed: bool) -> None:
        written = self._written.pop(id(connection), set())
        if committed and written:
            self.commits.append(written)


def _traced_cursor(statements: Statements) -> type:
    import psycopg

    class TracedCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            statements._statement(self.connection, str(query))
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            statements._statement(self.connection, str(query))
            return super().executemany(query, params_seq, **kwargs)

    return TracedCursor
