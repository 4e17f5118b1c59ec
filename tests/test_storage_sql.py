"""Driver SQL: the storage's statements run as written, on SQLite and PostgreSQL, in the engine's transactions."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy

from nas.benchmarks.distance import DistantServer
from nas.storage_sql import DriverSQL
from nas.study import open_storage
from tests.sql_statements import Statements


def scratch(database: str, tmp_path) -> tuple[DriverSQL, sqlalchemy.engine.Engine, str]:
    """Driver SQL on an engine set up as the search's, and a table of its own in the database."""
    engine = open_storage(database).engine
    table = "scratch_" + re.sub(r"\W", "_", tmp_path.name)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, x INTEGER NOT NULL)")
    return DriverSQL(engine), engine, table


def test_rows_queued_in_a_transaction_are_there_for_its_next_read_and_committed_with_it(tmp_path, database):
    sql, engine, table = scratch(database, tmp_path)
    statements = Statements(engine)
    with sql.transaction() as transaction:
        transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 10), (2, 20)])
        assert transaction.run(f"SELECT sum(x) FROM {table}").scalar() == 30
        transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(3, 30)])
        transaction.run_many(f"UPDATE {table} SET x = ? WHERE id = ?", [(11, 1)])
    assert sql.read(f"SELECT id, x FROM {table} ORDER BY id") == [(1, 11), (2, 20), (3, 30)]
    assert len(statements.commits) == 1
    with sql.transaction() as transaction:  # the transaction's last statement reads them too, and commits them
        transaction.run_many(f"UPDATE {table} SET x = ? WHERE id = ?", [(21, 2)])
        assert transaction.run_last(f"SELECT sum(x) FROM {table}").scalar() == 62
    assert sql.read(f"SELECT id, x FROM {table} ORDER BY id") == [(1, 11), (2, 21), (3, 30)]
    assert len(statements.commits) == 2


def test_a_queued_row_that_fails_rolls_back_its_whole_transaction(tmp_path, database):
    sql, _, table = scratch(database, tmp_path)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with sql.transaction() as transaction:
            transaction.run(f"INSERT INTO {table} (id, x) VALUES (?, ?)", 1, 10)
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(2, 20), (2, 21)])
    assert sql.read(f"SELECT count(*) FROM {table}") == [(0,)]
    with sql.transaction() as transaction:  # the connection goes on working
        transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(5, 50)])
    assert sql.read(f"SELECT id, x FROM {table}") == [(5, 50)]


@pytest.mark.parametrize("read_before", [False, True])
def test_an_error_raised_in_the_block_rolls_back_what_it_queued(tmp_path, database, read_before):
    sql, _, table = scratch(database, tmp_path)
    with pytest.raises(ValueError, match="refused"):
        with sql.transaction() as transaction:
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 10)])
            if read_before:
                assert transaction.run(f"SELECT count(*) FROM {table}").scalar() == 1
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(2, 20)])
            raise ValueError("refused")
    assert sql.read(f"SELECT count(*) FROM {table}") == [(0,)]
    with sql.transaction() as transaction:  # the connection goes on working
        transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 11)])
    assert sql.read(f"SELECT id, x FROM {table}") == [(1, 11)]


def test_a_postgresql_transaction_takes_a_round_trip_for_each_read_and_one_for_what_follows_with_commit(
        tmp_path, postgres_url):
    with DistantServer(sqlalchemy.engine.make_url(postgres_url).port, round_trip=0.01) as distant:
        sql, _, table = scratch(distant.url(postgres_url), tmp_path)
        trips = distant.round_trips
        with sql.transaction() as transaction:
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 10), (2, 20)])
            assert transaction.run(f"SELECT sum(x) FROM {table}").scalar() == 30
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(3, 30)])
        assert distant.round_trips - trips == 2  # BEGIN, the first rows and the read; the last row and COMMIT
        trips = distant.round_trips
        with sql.transaction() as transaction:
            transaction.run_many(f"UPDATE {table} SET x = ? WHERE id = ?", [(11, 1)])
        assert distant.round_trips - trips == 1
        trips = distant.round_trips
        with sql.transaction() as transaction:
            transaction.run_many(f"UPDATE {table} SET x = ? WHERE id = ?", [(21, 2)])
            assert transaction.run_last(f"SELECT sum(x) FROM {table}").scalar() == 62
        assert distant.round_trips - trips == 1  # the rows, the last read and COMMIT
        trips = distant.round_trips
        with sql.transaction() as transaction:
            later = transaction.run_later(f"UPDATE {table} SET x = ? WHERE id = ? RETURNING x", 31, 3)
            assert transaction.run_last(f"SELECT sum(x) FROM {table}").scalar() == 63
        assert later() == [(31,)] and distant.round_trips - trips == 1  # read with the last one
        trips = distant.round_trips
        assert sql.read(f"SELECT id, x FROM {table} ORDER BY id") == [(1, 11), (2, 21), (3, 31)]
        assert distant.round_trips - trips == 1


def test_a_statement_read_later_is_read_once_its_transaction_has_committed(tmp_path, database):
    sql, _, table = scratch(database, tmp_path)
    with sql.transaction() as transaction:
        transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 10), (2, 20)])
        later = transaction.run_later(f"UPDATE {table} SET x = x + 1 WHERE id = ? RETURNING x", 1)
        assert transaction.run_last(f"SELECT sum(x) FROM {table}").scalar() == 31  # the update's row seen
    assert later() == [(11,)] and later().scalar() == 11
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with sql.transaction() as transaction:
            transaction.run_later(f"INSERT INTO {table} (id, x) VALUES (?, ?) RETURNING id", 1, 12)
    assert sql.read(f"SELECT id, x FROM {table} ORDER BY id") == [(1, 11), (2, 20)]


def test_no_statement_can_follow_a_transaction_s_last_one(tmp_path, database):
    sql, _, table = scratch(database, tmp_path)
    with pytest.raises(RuntimeError, match="no statement can follow"):
        with sql.transaction() as transaction:
            transaction.run_last(f"SELECT count(*) FROM {table}")
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(3, 30)])
    assert sql.read(f"SELECT count(*) FROM {table}") == [(0,)]


def test_a_row_that_fails_before_the_last_read_rolls_back_its_transaction(tmp_path, database):
    sql, _, table = scratch(database, tmp_path)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with sql.transaction() as transaction:
            transaction.run_many(f"INSERT INTO {table} (id, x) VALUES (?, ?)", [(1, 10), (1, 11)])
            transaction.run_last(f"SELECT sum(x) FROM {table}")
    assert sql.read(f"SELECT count(*) FROM {table}") == [(0,)]
    with sql.transaction() as transaction:  # the connection goes on working
        assert transaction.run_last(f"INSERT INTO {table} (id, x) VALUES (?, ?) RETURNING id", 5, 50).scalar() == 5
    assert sql.read(f"SELECT id, x FROM {table}") == [(5, 50)]


def test_a_read_on_sqlite_does_not_wait_for_another_process_s_write_lock(tmp_path):
    sql, _, table = scratch(f"sqlite:///{tmp_path}/s.db", tmp_path)
    writer = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(f"INSERT INTO {table} (id, x) VALUES (1, 10)")
    started = datetime.now()
    assert sql.read(f"SELECT count(*) FROM {table}") == [(0,)]  # the last committed state, not the open write's
    assert datetime.now() - started < timedelta(seconds=5)  # a transaction would wait up to 30 s for the lock
    writer.execute("COMMIT")
    assert sql.read(f"SELECT count(*) FROM {table}") == [(1,)]


def test_times_are_stored_as_naive_utc_and_read_back_as_they_were_stored(tmp_path, database):
    sql, _, _ = scratch(database, tmp_path)
    moment = datetime(2026, 11, 25, 3, 4, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = sql.stamp(moment)
    assert sql.moment(stored) == datetime(2026, 11, 25, 1, 4, 5)  # microseconds 0 kept in SQLite's text too
    assert isinstance(stored, datetime) == database.startswith("postgresql")


def test_a_database_other_than_sqlite_or_postgresql_is_refused_by_name():
    with pytest.raises(ValueError, match="'mysql' is not supported; use SQLite or PostgreSQL"):
        DriverSQL(sqlalchemy.create_mock_engine("mysql://", None))
