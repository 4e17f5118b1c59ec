"""Opening storages: each scheme gives Optuna's own storage, and every refusal is one line that changes nothing."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3

import optuna
import pytest

from nas.search.storage import StorageError, display_url, open_storage


def test_each_scheme_opens_optunas_own_storage(tmp_path):
    sqlite = open_storage(f"sqlite:///{tmp_path}/s.db")
    journal = open_storage(f"journal:{tmp_path}/j/s.log")
    assert type(sqlite) is optuna.storages.RDBStorage and type(journal) is optuna.storages.JournalStorage
    for storage in (sqlite, journal):
        optuna.create_study(storage=storage, study_name="s").optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db").trials) == 2
    with sqlite3.connect(tmp_path / "s.db") as connection:  # several local workers write at once
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def checksum(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_database_of_another_optuna_version_is_refused_with_the_version_found(tmp_path):
    path = tmp_path / "old.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="s")
    with sqlite3.connect(path) as connection:  # as a future Optuna would leave it
        connection.execute("UPDATE alembic_version SET version_num = 'v99.0.0'")
        connection.execute("UPDATE version_info SET library_version = '99.0.0'")
    connection.close()
    before = checksum(path)
    with pytest.raises(StorageError) as refused:
        open_storage(f"sqlite:///{path}")
    message = str(refused.value)
    assert "\n" not in message and "set up by Optuna 99.0.0" in message
    assert f"this Optuna {optuna.__version__} cannot read; install Optuna 99.0.0 or newer" in message
    assert checksum(path) == before


@pytest.mark.parametrize("url,message", [
    ("nosuchdb://x/y", "storage 'nosuchdb://x/y' has an unknown scheme 'nosuchdb'; allowed: sqlite:///PATH, "
                       "postgresql://USER@HOST/DB, mysql://USER@HOST/DB, journal:PATH, grpc://HOST:PORT"),
    ("journal:", "storage 'journal:' names no file"),
    ("grpc://nohost", "storage 'grpc://nohost' must look like grpc://HOST:PORT"),
])
def test_bad_urls_are_one_line_naming_them_and_what_is_allowed(url, message):
    with pytest.raises(StorageError) as refused:
        open_storage(url)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_journal_in_a_folder_that_cannot_be_made_is_refused_and_nothing_made(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=rf"storage 'journal:{blocker}/s.log': cannot create folder '{blocker}'.*"
                                           r"allowed: a path in a folder you can write"):
        open_storage(f"journal:{blocker}/s.log")
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    with pytest.raises(StorageError, match=r"cannot create folder '/proc/nosuch'"):
        open_storage("journal:/proc/nosuch/s.log")


def test_passwords_never_reach_messages():
    assert display_url("postgresql://nas:secret@db/nas") == "postgresql://nas:***@db/nas"


def claim_enqueued(url: str, queue) -> None:
    """A worker's loop: claim enqueued trials until one comes that was not enqueued."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="q", storage=open_storage(url))
    claimed = []
    while True:
        trial = study.ask()
        if "slot" not in trial.user_attrs:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        claimed.append(trial.user_attrs["slot"])
        study.tell(trial, 1.0)
    queue.put(claimed)


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_workers_never_claim_one_enqueued_trial_twice(tmp_path, scheme):
    """Retries and the portfolio are enqueued trials: four workers racing for them each get different ones.
    (Python's sqlite3 reads outside a transaction, so without BEGIN IMMEDIATE they trained the same ones.)"""
    import multiprocessing

    url = f"sqlite:///{tmp_path}/q.db" if scheme == "sqlite" else f"journal:{tmp_path}/q.log"
    study = optuna.create_study(storage=open_storage(url), study_name="q")
    for slot in range(60):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    workers = [spawn.Process(target=claim_enqueued, args=(url, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    claimed = [slot for _ in workers for slot in queue.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(claimed) == list(range(60))


def _open_at_once(url: str, barrier, failures) -> None:
    barrier.wait()
    try:
        open_storage(url)
    except Exception as err:  # reported to the parent, which names it
        failures.put(f"{type(err).__name__}: {err}")


def test_processes_opening_one_fresh_database_together_all_succeed(tmp_path):
    """Workers, or a dashboard and a search, started together on a new database: Optuna's set-up races itself."""
    context = multiprocessing.get_context("fork")
    barrier, failures = context.Barrier(6), context.Queue()
    url = f"sqlite:///{tmp_path}/fresh.db"
    workers = [context.Process(target=_open_at_once, args=(url, barrier, failures)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    errors = [failures.get() for _ in range(failures.qsize())]
    assert not errors, errors
    assert [w.exitcode for w in workers] == [0] * 6
    assert optuna.create_study(storage=url, study_name="s").study_name == "s"
