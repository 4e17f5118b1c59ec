"""Per-epoch checkpoints of a running trial, so a retry after a crash resumes where the dead worker stopped.

A checkpoint is plain tensors, numbers and lists (``torch.load(weights_only=True)``
reads it): model, optimiser, scheduler, RNG states, the epoch and the learning
curve so far. It is written to a temporary file and renamed, so a crash never
leaves half a file; a file that is corrupt anyway is ignored with a warning.

>>> save_checkpoint(path, state); load_checkpoint(path)["epoch"]
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from nas.core.files import write_atomically


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, then a rename over ``path``."""
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state in ``path``; None if there is none, or (with a warning) if it cannot be read."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        int(state["epoch"])
        return state
    except Exception as err:  # torch raises many types for truncated or foreign files
        warnings.warn(f"checkpoint {str(path)!r} is corrupt ({type(err).__name__}); the retry starts from epoch 0",
                      stacklevel=2)
        return None


def remove_checkpoints(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


__all__ = ["load_checkpoint", "remove_checkpoints", "save_checkpoint"]
