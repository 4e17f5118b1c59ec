"""The gpu suite: a clear refusal without CUDA, and its arithmetic (FLOPs, peaks, shares) checked on any machine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import gpu, run_suite
from benchmarks.gpu import NO_CUDA, Plan, achieved_tflops, peak_bf16_tflops, peak_share, training_flops
from nas.cli import benchmark_main

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so the suite runs")


@no_cuda
def test_without_cuda_the_suite_refuses_in_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=f"^{NO_CUDA}$"):
        run_suite("gpu", tmp_path / "out", quick=True)
    assert not any((tmp_path / "out").iterdir())


@no_cuda
def test_without_cuda_the_cli_prints_the_reason_and_exits_non_zero(tmp_path, capsys):
    assert benchmark_main(["gpu", "--quick", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"benchmark.py: error: {NO_CUDA}"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "model", "peak"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.5),
    ("NVIDIA H100 NVL", "H100 NVL", 835.5),
    ("NVIDIA H200", "H200 SXM", 989.4),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA A100 80GB PCIe", "A100", 312.0),
])
def test_known_devices_get_their_dense_bf16_peak(name, model, peak):
    assert peak_bf16_tflops(name) == (model, peak)


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "NVIDIA GH200 480GB", "Tesla V100-SXM2-16GB",
                                  "x86_64 CPU, 2 threads"])
def test_unknown_devices_have_no_peak_and_no_share(name):
    assert peak_bf16_tflops(name) is None
    assert peak_share(123.0, None) is None


def test_an_epoch_counts_forward_and_backward_on_training_data_and_forward_on_evaluated_data():
    flops = training_flops(2e9, train_samples=100, eval_samples=10)
    assert flops == 2e9 * (3 * 100 + 10)
    assert achieved_tflops(flops, seconds=0.5) == pytest.approx(1.24)
    assert peak_share(494.7, 989.4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="seconds=0 must be > 0"):
        achieved_tflops(flops, 0)


def test_the_suite_measures_and_draws_everything_when_given_a_device(tmp_path, monkeypatch):
    # The CUDA path needs a GPU; the same code on the CPU with a CPU-sized plan shows it is wired through:
    # one and two workers sharing the device, then the trainer's TFLOP/s (no peak known for a CPU).
    plan = Plan(2, 60.0, "tiny", 1, workers=(1, 2), depth=1, samples=64, epochs=2, d_model=32, seq_len=64, heads=4,
                batch_size=16)
    monkeypatch.setattr(gpu, "cuda_device", lambda device: "cpu")
    monkeypatch.setattr(gpu, "plan_for", lambda quick, trials, minutes: plan)
    table = run_suite("gpu", tmp_path, quick=True)
    searches = table.dropna(subset=["trials_per_min"])
    assert list(searches["workers"]) == [1, 2] and list(searches["trials_run"]) == [2, 2]
    assert np.allclose(searches["trials_per_min"], 60 * searches["trials_run"] / searches["seconds"])
    speed = table.dropna(subset=["tflops"]).iloc[0]
    assert speed["tflops"] > 0 and pd.isna(speed["peak_tflops"]) and pd.isna(speed["peak_share"])
    assert "d=32" in speed["setup"] and "seq 64" in speed["setup"]
    assert (tmp_path / "gpu.png").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "gpu.csv")) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_gpu_suite_on_cuda(tmp_path):
    table = run_suite("gpu", tmp_path, quick=True)
    searches = table.dropna(subset=["trials_per_min"])
    assert list(searches["workers"]) == [1, 2] and (searches["trials_per_min"] > 0).all()
    speed = table.dropna(subset=["tflops"]).iloc[0]
    assert speed["tflops"] > 0
    assert (tmp_path / "gpu.csv").is_file() and (tmp_path / "gpu.png").stat().st_size > 10_000
