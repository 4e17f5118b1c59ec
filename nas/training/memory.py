"""How much memory training a candidate will take, known before it trains, and how much the device has.

A search draws candidates it has never built: a fused scorer over a long series
at a large batch can need tens of GiB and bring the whole machine down (the
kernel's out-of-memory killer ends the search with nothing but ``Killed``). So
each candidate is measured first, on a small batch at full length: the tensors
autograd saves for the backward pass (``saved_tensors_hooks``, deduplicated by
storage) are what grows with the batch; weights, gradients and AdamW's two
moments are four copies of the parameters. The estimate scales the first with
the batch and adds a margin for transient tensors.

>>> need = measure_memory_need(model, x[:4], mask)
>>> batch = fit_batch(need, 128, allowed=available_bytes(device))   # 128, a smaller batch, or MemoryBudgetError
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

MARGIN = 1.5  # transients (a block's scores before softmax, the allocator's slack) on top of what autograd saves
PROBE_SAMPLES = 4  # the batch the estimate is measured on
MIN_BATCH = 8  # the smallest batch a candidate is shrunk to before it is refused
GIB = 2 ** 30


class MemoryBudgetError(RuntimeError):
    """A candidate that cannot train within the memory allowed, even at the smallest batch; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MemoryNeed:
    """Training memory of one model: a fixed part (weights, gradients, optimiser moments) and a part per sample."""

    state_bytes: int
    per_sample_bytes: float

    def at(self, batch_size: int) -> int:
        return int(self.state_bytes + MARGIN * self.per_sample_bytes * batch_size)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> int:
    """Bytes autograd keeps from one forward pass of ``x`` until the backward pass, each storage counted once."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = model(x, mask)
        del out
    finally:
        model.train(was_training)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for pointer, size in storages.items() if pointer not in parameters)


def measure_memory_need(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> MemoryNeed:
    """The training memory of ``model``, measured on the samples of ``x`` (a small batch at full length)."""
    state = 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    return MemoryNeed(state, saved_activation_bytes(model, x, mask) / len(x))


def fit_batch(need: MemoryNeed, batch_size: int, allowed: int, min_batch: int = MIN_BATCH) -> int:
    """``batch_size``, halved until training fits in ``allowed`` bytes; refused below ``min_batch``."""
    batch = batch_size
    while need.at(batch) > allowed and batch // 2 >= min(min_batch, batch_size):
        batch //= 2
    if need.at(batch) > allowed:
        raise MemoryBudgetError(f"memory: needs ~{_size(need.at(batch))} to train at batch {batch}, "
                                f"{_size(allowed)} allowed")
    return batch


def available_bytes(device: torch.device) -> int:
    """Memory free for a new candidate now: CUDA's free memory, or the machine's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _size(count: float) -> str:
    """Bytes in the largest unit they fill, so that a small cap never reads as 0.00 GiB."""
    for unit, size in (("GiB", GIB), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.{2 if unit == 'GiB' else 1}f} {unit}"
    return f"{count / 1024:.1f} KiB"


__all__ = ["GIB", "MIN_BATCH", "PROBE_SAMPLES", "MemoryBudgetError", "MemoryNeed", "available_bytes", "fit_batch",
           "measure_memory_need", "saved_activation_bytes"]
