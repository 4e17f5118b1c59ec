"""Suite ``profile``: the capability profile (:mod:`nas.results.profile`) at CPU size, or MAD's size with ``--full``.

Writes ``profile_<device class>.csv`` (one row per training run, the size in
every row), ``profile_<device class>.png`` (the mixer x probe heat map) and returns
the table. A study's report on the same device class shows its winner's parts
against this file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmarks import register_suite
from benchmarks.attention import machine
from nas.results.profile import CPU, FULL, ProfileSize, device_class, profile, profile_path, profile_table
from nas.results.report.plots import plot_profile
from nas.training.device import resolve_device

QUICK = replace(CPU, name="quick", width=8, heads=2, steps=2, n_train=48, n_eval=32, lrs=(1e-3,))
"""A seconds-long smoke run over every mixer and probe: checks the plumbing, measures nothing."""


@register_suite("profile")
def profile_suite(out_dir: Path, device: str = "auto", quick: bool = False, full: bool = False,
                  tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Train every mixer on every probe (``tasks``: a subset of probe names); the mixer x probe table."""
    if quick and full:
        raise ValueError("--quick and --full contradict each other; give one")
    size: ProfileSize = QUICK if quick else FULL if full else CPU
    device = str(resolve_device(device))
    jobs = max(1, os.cpu_count() or 1) if device == "cpu" and not quick else 1
    probes = {} if tasks is None else {"probes": tasks}
    print(f"profile: {size.describe()}; {jobs} run(s) at a time on {machine(device)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="profile-") as cache:
        runs = profile(size, device=device, jobs=jobs, cache_dir=cache, **probes)
    runs["machine"] = machine(device)
    sizes = runs.drop_duplicates("mixer").set_index("mixer")
    print("parameters matched by width to the dot model's blocks (embeddings and head, the same for all, left out): "
          + ", ".join(f"{m} d={r.width} ({r.params:,})" for m, r in sizes.iterrows()), flush=True)
    path = profile_path(out_dir, device)
    runs.to_csv(path, index=False)
    table = profile_table(runs)
    plot_profile(table, f"What each mixer can do: MAD probes, {size.name} size on {device_class(device)}",
                 path.with_suffix(".png"))
    return table.round(3).reset_index()
