"""Ctrl-C that stops training at once but never cuts a storage write in half.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. In a
search that may be inside Optuna's write of a finished trial, which would lose
it. :class:`InterruptGuard` raises at once only inside :meth:`interruptible`
(training and measuring); elsewhere it holds the interrupt, and the search stops
as soon as the trial in hand is recorded. A second Ctrl-C raises at once.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator


class InterruptGuard:
    """Context manager installing the SIGINT handler (main thread only; elsewhere it does nothing)."""

    def __init__(self) -> None:
        self.pending = False
        self._open = False
        self._previous: Any = None

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: object) -> None:
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
