"""Which device to run on: ``auto`` picks CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; asking for one that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a device; allowed: {', '.join(DEVICE_KINDS)} or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} asked for CUDA, but no CUDA device is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name!r} asked for MPS, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={name!r} is not supported; allowed: {', '.join(DEVICE_KINDS)} or cuda:N")
    return device
