"""A throwaway PostgreSQL server for the workers benchmark and the tests: its own folder, a loopback port, a
non-root user.

PostgreSQL refuses to run as root, so when the tests run as root the server runs
as the ``postgres`` system user (present wherever Debian's package is installed).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def find_binary(name: str) -> str | None:
    candidates = [shutil.which(name)] + sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return next((c for c in candidates if c), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


@contextmanager
def postgres_server(database: str = "nas") -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL; stop and delete it afterwards."""
    initdb, pg_ctl, createdb = (find_binary(n) for n in ("initdb", "pg_ctl", "createdb"))
    if not (initdb and pg_ctl and createdb):
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's 'postgresql'")
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (folder, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    role = user or pwd.getpwuid(os.geteuid()).pw_name
    try:
        subprocess.run(_as_user(user, [initdb, "-D", str(data), "-A", "trust", "-U", role, "--no-sync"]),
                       check=True, capture_output=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]),
                       check=True, capture_output=True)
        try:
            _wait_for(port)
            subprocess.run(_as_user(user, [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", role, database]),
                           check=True, capture_output=True)
            yield f"postgresql+psycopg://{role}@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not accept connections on 127.0.0.1:{port} within {seconds:.0f} s")
