"""MiniRocket on the task's own split: fitted on train + validation, scored on test, cached, UCR tasks only."""

from __future__ import annotations

import math

import torch

from nas.data import Split, Task
from nas.data.spec import InputSpec
from nas.results.baselines import minirocket_baseline


def waves(n: int, seed: int) -> Split:
    """Sines (class 0) against square waves (class 1) of random phase, 64 steps."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.linspace(0, 4 * math.pi, 64)[None, :] + 6 * torch.rand(n, 1, generator=gen)
    x = torch.where(y[:, None] == 0, torch.sin(t), torch.sign(torch.sin(t))) + 0.1 * torch.randn(n, 64, generator=gen)
    return Split(x[..., None].contiguous(), y)


def task(name: str = "ucr:Waves") -> Task:
    return Task(name, waves(16, 0), waves(4, 1), waves(20, 2), InputSpec(seq_len=64, features=1, num_outputs=2),
                "accuracy", ("sine", "square"), 0)


def test_minirocket_separates_sines_from_squares_and_is_cached(tmp_path, monkeypatch):
    first = minirocket_baseline(task(), seed=0, cache_dir=tmp_path)
    assert first["test"] > 0.9 and first["n_train"] == 20 and first["fit_on"] == "train+validation"
    assert first["model"].startswith("MiniRocket (aeon ")
    import aeon.classification.convolution_based as module

    monkeypatch.setattr(module, "MiniRocketClassifier", None)  # a refit would now fail
    assert minirocket_baseline(task(), seed=0, cache_dir=tmp_path) == first


def test_tasks_that_are_not_ucr_have_no_minirocket_row(tmp_path):
    assert minirocket_baseline(task("digits"), seed=0, cache_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())
