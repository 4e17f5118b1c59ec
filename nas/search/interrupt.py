"""Ctrl-C (or SIGTERM) that stops training at once but never cuts a storage write in half.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. In a
search that may be inside Optuna's write of a finished trial, which would lose
it. :class:`InterruptGuard` raises at once only inside :meth:`interruptible`
(training and measuring); elsewhere it holds the interrupt, and the search stops
as soon as the trial in hand is recorded. A second signal raises at once.

SIGTERM is what ``kill``, ``timeout``, ``docker stop`` and batch schedulers send
before they kill: without a handler the process dies at once and its trial stays
RUNNING until its heartbeat goes stale. It is handled as Ctrl-C, and passed on to
this process's worker processes, which Ctrl-C reaches through the terminal but a
SIGTERM sent to one process does not.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator


SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """Context manager installing the SIGINT and SIGTERM handler (main thread only; elsewhere it does nothing)."""

    def __init__(self) -> None:
        self.pending = False
        self._open = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGTERM and not self.pending:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGTERM)
        if self._open or self.pending:
            self.pending = True
            raise KeyboardInterrupt
        self.pending = True

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Where Ctrl-C may raise at once; an interrupt held from before raises on entry."""
        if self.pending:
            raise KeyboardInterrupt
        self._open = True
        try:
            yield
        finally:
            self._open = False

    def stop_if_pending(self, study: Any, trial: Any) -> None:
        """Optuna callback: end the search after the trial just recorded if Ctrl-C came meanwhile."""
        if self.pending:
            study.stop()
