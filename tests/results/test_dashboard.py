"""A study is plain Optuna: optuna-dashboard and ``trials_dataframe()`` read it, while the search still runs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


@contextmanager
def dashboard(storage: str):
    """optuna-dashboard as a user starts it, on a loopback port; yields its base URL."""
    port = free_port()
    server = subprocess.Popen([str(DASHBOARD), storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                get(f"{base}/api/meta")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def storage_of(url: str, path: Path):
    return url if url.startswith("sqlite") else optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path)))


def trials_of(url: str, path: Path) -> list:
    try:
        return optuna.load_study(study_name="s", storage=storage_of(url, path)).trials
    except (KeyError, RuntimeError, optuna.exceptions.StorageInternalError,
            sqlalchemy.exc.SQLAlchemyError):  # not made yet, or made meanwhile: both sides set the tables up
        return []


def trials_seen(base: str, name: str) -> list[dict]:
    studies = [s for s in get(f"{base}/api/studies")["study_summaries"] if s["study_name"] == name]
    return get(f"{base}/api/studies/{studies[0]['study_id']}")["trials"] if studies else []


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_dashboard_and_pandas_read_a_running_search(tmp_path, kind):
    path = tmp_path / ("s.db" if kind == "sqlite" else "s.log")
    url = f"sqlite:///{path}" if kind == "sqlite" else f"journal:{path}"
    search = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "search.py"), "--space", "tiny", "--trials", "3",
                               "--max-epochs", "150", "--pruner", "none", "--study", "s", "--storage", url,
                               "--results", str(tmp_path), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not path.exists() or not trials_of(url, path):  # the dashboard opens a storage a search has made
            assert search.poll() is None, search.stderr.read()
            time.sleep(0.1)
        with dashboard(str(path) if kind == "journal" else url) as base:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and search.poll() is None:
                trials = trials_seen(base, "s")
                states = [t["state"] for t in trials]
                if "Complete" in states and "Running" in states:
                    break
                time.sleep(0.2)
            assert search.poll() is None, search.stderr.read()
            assert "Complete" in states and "Running" in states, states
            done = next(t for t in trials if t["state"] == "Complete")
            attrs = {a["key"]: a["value"] for a in done["user_attrs"]}
            assert {"arch", "summary", "result", "best_val", "test", "params"} <= set(attrs)
            assert json.loads(attrs["arch"])["d_model"] in (8, 16)  # the architecture, as JSON

            frame = optuna.load_study(study_name="s", storage=storage_of(url, path)).trials_dataframe()
            assert {"COMPLETE", "RUNNING"} <= set(frame["state"])
            assert {"user_attrs_arch", "user_attrs_best_val", "user_attrs_result"} <= set(frame.columns)
    finally:
        search.send_signal(signal.SIGINT)
        search.wait(timeout=60)
