"""Where a study lives: Optuna's own storages, opened from one URL, unchanged.

- ``sqlite:///PATH``: :class:`optuna.storages.RDBStorage` with a 30 s busy timeout
  (``connect_args``) on a database file in WAL mode, its transactions begun with
  ``BEGIN IMMEDIATE`` through SQLAlchemy's public events, so several local workers
  write without "database is locked" and never claim one enqueued trial twice.
- ``postgresql://...`` (psycopg 3) and ``mysql://...`` (PyMySQL): ``RDBStorage`` too,
  for workers on many machines.
- ``journal:PATH``: :class:`optuna.storages.JournalStorage` on a file, for a shared
  file system without a database server.
- ``grpc://HOST:PORT``: :class:`optuna.storages.GrpcStorageProxy`, for many workers
  sharing one database through ``optuna.storages.run_grpc_proxy_server``
  (``scripts/storage_proxy.py`` runs one).

Nothing is subclassed or patched, so optuna-dashboard and ``optuna.load_study``
read every study, and an Optuna upgrade cannot silently break it.

>>> storage = open_storage("sqlite:///results/digits-default.db")
"""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc

from nas.search.curve_pruning import is_shadow

SCHEMES = ("sqlite:///PATH", "postgresql://USER@HOST/DB", "mysql://USER@HOST/DB", "journal:PATH", "grpc://HOST:PORT")
SQLITE = "sqlite:///"
JOURNAL = "journal:"
GRPC = "grpc://"
BUSY_TIMEOUT_SECONDS = 30
T = TypeVar("T")
SETUP_ATTEMPTS = 5  # opening a fresh database races any process that sets it up at the same moment
DRIVERS = {"postgresql": ("psycopg", "postgresql+psycopg", "postgres"), "mysql": ("pymysql", "mysql+pymysql", "mysql")}


class StorageError(ValueError):
    """A storage that cannot be opened as asked; the one-line message names it and says what is allowed."""


def default_url(results_dir: str | Path, study: str) -> str:
    """``sqlite:///<results_dir>/<study>.db``, where a search keeps its study unless told otherwise."""
    return f"{SQLITE}{Path(results_dir) / study}.db"


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for files and messages."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", url)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage ``url`` names; see the module docstring for the schemes.

    Nothing is created or changed when the URL is refused: the checks come first.
    """
    if url.startswith(SQLITE):
        return _sqlite(url)
    if url.startswith(JOURNAL):
        return _journal(url[len(JOURNAL):])
    if url.startswith(GRPC):
        return _grpc(url)
    scheme = url.split(":", 1)[0]
    family = scheme.split("+", 1)[0]
    if family == "postgres":
        family = "postgresql"
    if family in DRIVERS and "://" in url:
        module, dialect, extra = DRIVERS[family]
        if "+" in scheme:  # the user chose the driver
            return _rdb(url)
        if importlib.util.find_spec(module) is None:
            raise StorageError(f"storage {display_url(url)!r} needs the driver {module}, which is not installed; "
                               f"pip install -e '.[{extra}]'")
        return _rdb(dialect + url[len(scheme):])
    raise StorageError(f"storage {display_url(url)!r} has an unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")


def _sqlite(url: str) -> optuna.storages.RDBStorage:
    path = Path(url[len(SQLITE):])
    if str(path) in ("", ":memory:"):
        return _rdb(url)
    _writable_folder(path, url)
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(f"storage {url!r} cannot be written: no write permission on {str(path)!r}")
    if not path.exists():
        # WAL lets readers and one writer work at once; the mode is kept in the file, so it is set once, here.
        try:
            _set_up_racing(lambda: _write_ahead_log(path), lambda err: "locked" in str(err))
        except sqlite3.Error as err:
            raise StorageError(f"cannot open storage {url!r}: {str(err).splitlines()[0]}") from None
    storage = _rdb(url, {"connect_args": {"timeout": BUSY_TIMEOUT_SECONDS}})
    _immediate_transactions(storage.engine)
    return storage


def _immediate_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make every transaction on ``engine`` take SQLite's write lock as it begins (SQLAlchemy's documented recipe).

    Python's sqlite3 runs a transaction's reads outside it and begins only at the first write, so two workers
    could both read an enqueued trial as WAITING, both set it RUNNING, and train it twice. Optuna's
    ``SELECT ... FOR UPDATE`` prevents this on PostgreSQL and MySQL; on SQLite the lock must come from ``BEGIN
    IMMEDIATE``. Waiting for the lock is bounded by the busy timeout.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, says where transactions begin

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _rdb(url: str, engine_kwargs: dict | None = None) -> optuna.storages.RDBStorage:
    try:
        return _rdb_set_up_once(url, engine_kwargs)
    except RuntimeError as err:  # Optuna's schema check: the database was set up by another version
        found = re.search(r"set up by optuna ([^)\s]+)", str(err))
        if found is None:
            raise StorageError(f"cannot open storage {display_url(url)!r}: {str(err).splitlines()[0]}") from None
        fix = ("upgrade it with `optuna storage upgrade --storage URL`" if "storage upgrade" in str(err)
               else f"install Optuna {found.group(1)} or newer")
        raise StorageError(f"storage {display_url(url)!r} was set up by Optuna {found.group(1)}, which this Optuna "
                           f"{optuna.__version__} cannot read; {fix}") from None
    except Exception as err:  # SQLAlchemy raises many types for bad URLs, drivers and hosts
        raise StorageError(f"cannot open storage {display_url(url)!r}: {str(err).splitlines()[0]}") from None


def _write_ahead_log(path: Path) -> None:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _rdb_set_up_once(url: str, engine_kwargs: dict | None) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried when another process set the fresh database up at the same moment.

    Optuna creates the tables and stamps the schema version on open: two workers, or a dashboard and a search,
    opening one new database together can both stamp, and the second fails on the version table's unique key
    (or on a table that now exists). The first one's set-up is then complete, so opening again succeeds.
    """
    return _set_up_racing(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs),
                          lambda err: isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err))


def _set_up_racing(set_up: Callable[[], T], raced: Callable[[Exception], bool]) -> T:
    """``set_up()``, tried again (a few times, briefly apart) while it fails as ``raced`` says another process's
    set-up of the same new database does."""
    attempt = 1
    while True:
        try:
            return set_up()
        except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error) as err:
            if not raced(err) or attempt == SETUP_ATTEMPTS:
                raise
            time.sleep(0.1 * attempt)
            attempt += 1


def _journal(path_text: str) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    if not path_text:
        raise StorageError("storage 'journal:' names no file; write journal:PATH, e.g. journal:results/study.log")
    path = Path(path_text)
    _writable_folder(path, JOURNAL + path_text)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:
        raise StorageError(f"storage {JOURNAL + path_text!r} cannot be opened: {err.strerror}") from None


def _grpc(url: str) -> optuna.storages.BaseStorage:
    match = re.fullmatch(r"grpc://([^:/]+):(\d+)/?", url)
    if not match:
        raise StorageError(f"storage {url!r} must look like grpc://HOST:PORT, e.g. grpc://localhost:13000")
    if importlib.util.find_spec("grpc") is None:
        raise StorageError(f"storage {url!r} needs grpcio, which is not installed; pip install -e '.[grpc]'")
    return optuna.storages.GrpcStorageProxy(host=match.group(1), port=int(match.group(2)))


def _writable_folder(path: Path, url: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"storage {url!r}: cannot create folder {str(path.parent)!r}: {err.strerror}; "
                           f"allowed: a path in a folder you can write") from None
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"storage {url!r} cannot be written: no write permission in {str(path.parent)!r}; "
                           f"allowed: a path in a folder you can write")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The studies in ``storage``, without the shadow studies that prune multi-objective ones."""
    return [name for name in optuna.study.get_all_study_names(storage) if not is_shadow(name)]


__all__ = ["JOURNAL", "SCHEMES", "SQLITE", "StorageError", "default_url", "display_url", "open_storage", "study_names"]
