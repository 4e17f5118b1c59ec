"""Position signals: added to the input (learned, sinusoidal) or applied inside attention (rotary, ALiBi)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """The fixed sin/cos table of Vaswani et al.; odd ``dim`` drops the last cosine column."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class AddedPosition(nn.Module):
    """Adds a learned or sinusoidal position vector to each token; identity for the other kinds."""

    def __init__(self, kind: str, max_len: int, dim: int):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)
        else:
            self.table = None

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, D)
        if self.table is None:
            return x
        if x.shape[1] > self.table.shape[0]:
            raise ValueError(
                f"sequence of {x.shape[1]} tokens is longer than the {self.table.shape[0]} this model was built for"
            )
        return x + self.table[: x.shape[1]].to(x.dtype)


def apply_rotary(x: Tensor) -> Tensor:
    """Rotary position embedding (Su et al.) on (B, H, T, hd), rotating pairs (i, i + hd/2)."""
    _, _, length, dim = x.shape
    half = dim // 2
    freq = 1.0 / (10000 ** (torch.arange(half, device=x.device, dtype=torch.float32) / half))
    angle = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * freq  # (T, hd/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def alibi_slopes(heads: int) -> Tensor:
    """Head slopes of Press et al.: a geometric sequence, interleaved when heads is not a power of 2."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_two(heads))
    closest = 2 ** math.floor(math.log2(heads))
    extra = power_of_two(2 * closest)[0::2][: heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


def alibi_bias(slopes: Tensor, length: int) -> Tensor:
    """(H, T, T) bias ``-slope * |i - j|``: the symmetric (bidirectional) ALiBi variant."""
    pos = torch.arange(length, device=slopes.device)
    distance = (pos[None, :] - pos[:, None]).abs().to(slopes.dtype)
    return -slopes[:, None, None] * distance
