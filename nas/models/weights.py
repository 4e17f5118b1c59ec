"""Weights on disk as safetensors: written atomically, read without ever unpickling."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nas.core.files import write_atomically


def save_weights(path: str | Path, state_dict: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``state_dict`` as safetensors (CPU, contiguous) through a temporary file and ``os.replace``.

    A reader never sees half a file: a crash leaves the old file or none.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=dict(metadata) if metadata else None))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file on the CPU; anything else (a pickle included) is refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file ({err}); weights are only read "
                         "as safetensors, never unpickled") from None


__all__ = ["load_weights", "save_weights"]
