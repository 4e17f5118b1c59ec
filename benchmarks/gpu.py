"""Suite ``gpu``: how well the search uses one CUDA device.

Two measures: trials per minute of the default search with one worker and with
several sharing the device (small candidates leave a GPU mostly idle, so
workers should add throughput), and the trainer's achieved bf16 TFLOP/s on a
mid-size candidate as a share of the device's dense peak. Without CUDA the
suite refuses with one line and writes nothing.
"""

from __future__ import annotations

import io
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks import register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from nas.training.device import resolve_device  # noqa: E402
from nas.models.measure import count_flops  # noqa: E402
from nas.models.model import build_model  # noqa: E402
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec  # noqa: E402
from nas.search.config import SearchConfig  # noqa: E402
from nas.search.run import run_search  # noqa: E402
from nas.data import load_task  # noqa: E402
from nas.training.trainer import TrainConfig, Trainer  # noqa: E402

NO_CUDA = "no CUDA device: the gpu suite needs one"

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's data sheets, matched against
# torch.cuda.get_device_name() in order: first match wins, so the specific names precede the general ones.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"\bH200 NVL\b", "H200 NVL", 835.5),
    (r"\bH200\b", "H200 SXM", 989.4),
    (r"\bH100 NVL\b", "H100 NVL", 835.5),
    (r"\bH100 PCIe\b", "H100 PCIe", 756.5),
    (r"\bH100\b", "H100 SXM", 989.4),  # e.g. "NVIDIA H100 80GB HBM3"
    (r"\bA100\b", "A100", 312.0),  # SXM4 and PCIe alike
)


@dataclass(frozen=True)
class Plan:
    """What one run measures: ``trials`` per search on ``space`` (capped at ``seconds``) for each worker count,
    then ``epochs`` epochs of the mid-size candidate on ``samples`` sequences of ``seq_len`` tokens."""

    trials: int
    seconds: float
    space: str
    max_epochs: int
    workers: tuple[int, ...]
    depth: int
    samples: int
    epochs: int
    d_model: int = 512
    seq_len: int = 1024
    heads: int = 8
    batch_size: int = 32


def plan_for(quick: bool, trials: int | None, minutes: float | None) -> Plan:
    """Full: 40 trials (or 3 minutes) per search with 1 and 4 workers, then a 4-block candidate for 4 epochs."""
    if quick:
        base = Plan(4, 60.0, "tiny", 2, workers=(1, 2), depth=2, samples=256, epochs=2)
    else:
        base = Plan(40, 180.0, "default", 8, workers=(1, 4), depth=4, samples=4096, epochs=4)
    return replace(base, trials=trials or base.trials, seconds=60 * minutes if minutes else base.seconds)


def cuda_device(device: str) -> str:
    """The CUDA device to measure; ``auto`` means the first. Anything else is refused in one line."""
    if not torch.cuda.is_available():
        raise ValueError(NO_CUDA)
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        raise ValueError(f"device={device!r} is not a CUDA device; the gpu suite takes auto, cuda or cuda:N")
    return f"cuda:{resolved.index or 0}"


def peak_bf16_tflops(device_name: str) -> tuple[str, float] | None:
    """``(model, dense bf16 peak TFLOP/s)`` for a device name, or None for a device not in the table.

    >>> peak_bf16_tflops("NVIDIA H100 80GB HBM3")
    ('H100 SXM', 989.4)
    """
    for pattern, model, peak in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return model, peak
    return None


def training_flops(forward_flops_per_sample: float, train_samples: int, eval_samples: int) -> float:
    """FLOPs of one epoch: forward and backward (3x the forward) on every training sample, forward on every
    evaluated one."""
    return forward_flops_per_sample * (3 * train_samples + eval_samples)


def achieved_tflops(flops: float, seconds: float) -> float:
    if not seconds > 0:
        raise ValueError(f"seconds={seconds!r} must be > 0")
    return flops / seconds / 1e12


def peak_share(tflops: float, peak: float | None) -> float | None:
    """``tflops`` as a share of ``peak`` (None when the peak is unknown)."""
    return None if peak is None else tflops / peak


@register_suite("gpu")
def gpu_suite(out_dir: Path, device: str = "auto", quick: bool = False, trials: int | None = None,
              minutes: float | None = None) -> pd.DataFrame:
    """Trials per minute by worker count, then achieved TFLOP/s; writes gpu.csv and gpu.png."""
    device = cuda_device(device)  # before anything is written
    plan = plan_for(quick, trials, minutes)
    rows = [search_row(plan, workers, device) for workers in plan.workers]
    rows.append(throughput_row(plan, device))
    table = pd.DataFrame(rows).assign(device=device, machine=machine(device))
    table.to_csv(out_dir / "gpu.csv", index=False)
    _plot(table, out_dir / "gpu.png")
    return table


def search_row(plan: Plan, workers: int, device: str) -> dict:
    """One search of ``plan.trials`` trials on digits with ``workers`` processes all on ``device``; its rate is
    over the whole command's wall time, worker start-up included, as a user waits for it."""
    with tempfile.TemporaryDirectory(prefix="gpu-search-") as work:
        config = SearchConfig(trials=plan.trials, task="digits", space=plan.space, max_epochs=plan.max_epochs,
                              timeout=plan.seconds, device=device, jobs=workers, devices=(device,) * workers,
                              quiet=True, results_dir=work, study="gpu")
        start = time.perf_counter()
        outcome = run_search(config, out=io.StringIO())
        seconds = time.perf_counter() - start
    return {"measure": f"search, {workers} worker{'s' * (workers > 1)}", "workers": workers,
            "trials_run": outcome.finished, "seconds": seconds, "trials_per_min": 60 * outcome.finished / seconds,
            "setup": f"digits, space {plan.space}, {plan.max_epochs} epochs, "
                     f"{plan.trials} trials or {plan.seconds:g} s"}


def throughput_row(plan: Plan, device: str) -> dict:
    """Train the mid-size candidate with the trainer; TFLOP/s from counted FLOPs over the median epoch after
    the first (which pays for kernel selection and allocator growth)."""
    task = load_task("mqar", seq_len=plan.seq_len, n_train=plan.samples, n_val=plan.samples // 8, n_test=8)
    spec = mid_size_spec(plan)
    trainer = Trainer(task, device)
    model = build_model(spec, task.input_spec, seed=0).to(trainer.device)
    with trainer.autocast():  # count the kernels training runs: bf16 SDPA
        per_sample = count_flops(model, trainer.train.x[:plan.batch_size], None) / plan.batch_size
    result = trainer.fit(model, TrainConfig(batch_size=plan.batch_size, max_epochs=plan.epochs, warmup=0.0))
    seconds = statistics.median(result.epoch_seconds[1:] or result.epoch_seconds)
    tflops = achieved_tflops(training_flops(per_sample, len(trainer.train), len(trainer.val)), seconds)
    peak = peak_bf16_tflops(machine(str(trainer.device)))  # the CUDA device's name
    return {"measure": "trainer TFLOP/s", "tflops": tflops, "peak_tflops": peak[1] if peak else None,
            "peak_share": peak_share(tflops, peak[1] if peak else None), "peak_of": peak[0] if peak else None,
            "seconds": seconds,
            "setup": f"{spec.summary()}, seq {plan.seq_len}, batch {plan.batch_size}, bf16, {plan.samples} samples"}


def mid_size_spec(plan: Plan) -> ArchSpec:
    """``plan.depth`` blocks of dot-product attention (PyTorch's fused SDPA) at width ``plan.d_model``."""
    block = BlockSpec(MixerSpec("single", (AttentionSpec("dot", plan.heads),)), ff_mult=4)
    return ArchSpec(plan.d_model, (block,) * plan.depth, position="sinusoidal")


def _plot(table: pd.DataFrame, path: Path) -> None:
    searches = table.dropna(subset=["trials_per_min"])
    speed = table.dropna(subset=["tflops"]).iloc[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.bar([str(w) for w in searches["workers"].astype(int)], searches["trials_per_min"])
    left.set(xlabel="workers sharing the GPU", ylabel="trials per minute", title="Search throughput")
    right.bar(["achieved"], [speed["tflops"]])
    if pd.notna(speed["peak_tflops"]):
        right.bar(["dense bf16 peak"], [speed["peak_tflops"]])
        right.set_title(f"Trainer: {speed['tflops']:.0f} TFLOP/s = {100 * speed['peak_share']:.1f}% of the "
                        f"{speed['peak_of']} peak")
    else:
        right.set_title(f"Trainer: {speed['tflops']:.0f} TFLOP/s (peak of this device unknown)")
    right.set_ylabel("TFLOP/s")
    fig.suptitle(f"GPU use on {table['machine'].iloc[0]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
