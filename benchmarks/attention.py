"""Suite ``attention``: forward+backward time of every family against sequence length, and peak memory.

Memory is measured in a fresh child process as growth of its peak resident set
(CPU, Linux's VmHWM) or as ``max_memory_allocated`` (CUDA), so one run cannot
hide inside another's allocations.
"""

from __future__ import annotations

import multiprocessing
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from nas.models.attention import attention_names, get_attention  # noqa: E402
from benchmarks import register_suite  # noqa: E402
from nas.models.measure import time_call  # noqa: E402
from nas.training.device import resolve_device  # noqa: E402

BATCH, D_MODEL, HEADS, WINDOW = 2, 64, 4, 16
LENGTHS = (64, 256, 1024, 4096)
QUICK_LENGTHS = (64, 256)


def _step(name: str, length: int, device: str):
    """A closure running one forward+backward of family ``name`` on random data."""
    family = get_attention(name)
    torch.manual_seed(0)
    module = family(D_MODEL, HEADS, window=WINDOW if family.windowed else None).to(device)
    x = torch.randn(BATCH, length, D_MODEL, device=device, requires_grad=True)

    def step() -> None:
        module(x).sum().backward()

    return step


def _peak_memory_child(name: str, length: int, device: str, out) -> None:
    torch.set_num_threads(1)
    step = _step(name, length, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        out.put((torch.cuda.max_memory_allocated() - base) / 2**20)
        return
    base = _reset_peak_rss_kib()
    step()
    out.put((_status_kib("VmHWM") - base) / 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _reset_peak_rss_kib() -> int:
    """Reset the peak resident set to the current one; returns it (KiB).

    ``ru_maxrss`` would not do: Linux carries it over from the parent across
    fork and exec, so a child started after a large run reports no growth.
    """
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_kib("VmHWM")


def peak_memory_mib(name: str, length: int, device: str) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_memory_child, args=(name, length, device, queue))
    child.start()
    value = queue.get(timeout=600)
    child.join()
    return float(value)


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


@register_suite("attention")
def attention_suite(out_dir: Path, device: str = "auto", quick: bool = False) -> pd.DataFrame:
    """Times every registered family; writes attention.csv and attention.png to ``out_dir``."""
    device = str(resolve_device(device))
    lengths = QUICK_LENGTHS if quick else LENGTHS
    rows = []
    for name in attention_names():
        for length in lengths:
            long = length >= 4096
            # One warm-up always: the first call pays one-off costs (thread pools, kernel choice).
            seconds = time_call(_step(name, length, device), device, repeats=1 if quick or long else 3, warmup=1)
            rows.append({"type": name, "seq_len": length, "ms_fwd_bwd": 1000 * seconds})
        rows[-1]["peak_mib"] = peak_memory_mib(name, lengths[-1], device)
    table = pd.DataFrame(rows).assign(batch=BATCH, d_model=D_MODEL, heads=HEADS, window=WINDOW,
                                      device=device, machine=machine(device))
    table.to_csv(out_dir / "attention.csv", index=False)
    _plot(table, out_dir / "attention.png")
    return table


def _plot(table: pd.DataFrame, path: Path) -> None:
    fig, (times, memory) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, rows in table.groupby("type"):
        times.plot(rows["seq_len"], rows["ms_fwd_bwd"], marker="o", label=name)
    times.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="forward+backward (ms)",
              title="Time per step")
    times.set_xticks(sorted(table["seq_len"].unique()), labels=[str(v) for v in sorted(table["seq_len"].unique())])
    times.legend(title="attention")
    times.grid(True, which="both", alpha=0.3)
    longest = table.dropna(subset=["peak_mib"])
    memory.barh(longest["type"], longest["peak_mib"])
    memory.set(xlabel="peak memory growth (MiB)", title=f"Peak memory at {int(longest['seq_len'].max())} tokens")
    first = table.iloc[0]
    fig.suptitle(f"Attention families on {first['machine']}: batch {first['batch']}, d_model {first['d_model']}, "
                 f"{first['heads']} heads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
