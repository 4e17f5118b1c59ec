"""Shared fixtures: the devices to run contract tests on, the databases to run storage tests on, and small reproducible inputs."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def run_on(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, device: str) -> torch.Tensor:
    """Forward on ``device``: float32 on CPU, bf16 autocast on CUDA (the trainer's precision there)."""
    x, mask = x.to(device), mask.to(device)
    if device == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return module(x, mask)
    return module(x, mask)


def tolerance(device: str) -> float:
    return 2e-2 if device == "cuda" else 1e-5


def padded_batch(batch: int = 3, length: int = 12, dim: int = 16, seed: int = 0):
    """(x, mask) where sample 1 keeps 7 real tokens and sample 2 keeps 4; sample 0 is full."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=gen)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 7:] = False
    if batch > 2:
        mask[2, 4:] = False
    return x, mask


def scramble_padding(x: torch.Tensor, mask: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """The same batch with different (large) values at every padded position."""
    gen = torch.Generator().manual_seed(seed)
    noise = 100 * torch.randn(x.shape, generator=gen).to(x.dtype)
    pad = ~mask
    while pad.dim() < x.dim():
        pad = pad[..., None]
    return torch.where(pad.to(x.device), noise.to(x.device), x)


def assert_every_parameter_learns(module: torch.nn.Module, out: torch.Tensor) -> None:
    """Backward through a random projection (a plain sum can cancel under normalisation)."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
    (out.float() * weights.float()).sum().backward()
    dead = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a real PostgreSQL server started for this test session (see tests/postgres_server.py)."""
    import os

    from tests.support.postgres import find_binary, postgres_server

    if find_binary("initdb") is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL server binaries are not installed here (.ci/run installs them)")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """A database URL: a file in the test's folder, or the test session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/s.db"
    return request.getfixturevalue("postgres_url")
