"""What an SQLAlchemy engine runs: every statement, and the tables each committed transaction wrote."""

from __future__ import annotations

import re

import sqlalchemy

WRITTEN_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


class Statements:
    """Listens on ``engine`` (every thread using it) from the moment it is made."""

    def __init__(self, engine: sqlalchemy.engine.Engine):
        self.sql: list[str] = []
        self.commits: list[set[str]] = []  # tables written, per transaction that wrote any
        self._written: set[str] = set()
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._execute)
        sqlalchemy.event.listen(engine, "commit", self._commit)

    def writes_to(self, *tables: str) -> int:
        """How many committed transactions wrote to any of ``tables``."""
        return sum(bool(written & set(tables)) for written in self.commits)

    def _execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.sql.append(statement)
        match = WRITTEN_TABLE.match(statement)
        if match:
            self._written.add(match.group(1).strip('"'))

    def _commit(self, conn) -> None:
        if self._written:
            self.commits.append(self._written)
        self._written = set()
