"""Capability profile: what each attention type, and each topology over a fixed pair, can do on the MAD probes.

A ranking says which candidate won on one data set; the profile says what its
parts are good at. It follows MAD's protocol (Poli et al., ICML 2024;
``make_benchmark_mad_configs`` in github.com/athms/mad-lab): every mixer trains on
every probe over a grid of learning rate x weight decay; a difficulty level
scores the best test accuracy over the grid, and a probe the mean over its
levels. Models are two blocks (mixer, then MLP), as MAD's.

Parameter counts are matched by width, so that no mixer wins by size: the
dot-product model is built at the size's width, and every other mixer at the width
(a multiple of the head count) whose blocks come closest to the dot model's
block parameters. Embeddings and output heads, the same for every mixer, are
not counted.

>>> runs = profile(CPU, device="cpu")              # doctest: +SKIP
>>> profile_table(runs)                            # mixer x probe, and the mean
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import torch

from nas.data import load_task
from nas.data.mad import PROBES, task_name
from nas.data.spec import InputSpec
from nas.models.attention import attention_names, get_attention
from nas.models.model import build_model
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, EmbeddingSpec, MixerSpec
from nas.training.probes import CPU, FULL, SIZES, ProfileSize, fit_probe, levels, probe_trainer

PAIR = ("dot", "local")
"""The fixed pair every topology composes: softmax attention with its sliding-window variant (fusable, since
both score)."""
STOCK = "dot"
"""The stock Transformer's mixer: the profile row a report sets the winner's parts beside."""
REFERENCE = "dot"
"""The mixer whose block parameters every other one is matched to."""


def mixers(window: int, pair: tuple[str, str] = PAIR) -> dict[str, MixerSpec]:
    """Each registered attention type alone, then each multi-branch topology over ``pair``, by display name."""
    def attention(kind: str, heads: int) -> AttentionSpec:
        return AttentionSpec(kind, heads, window=window if get_attention(kind).windowed else None)

    out = {kind: MixerSpec("single", (attention(kind, 1),)) for kind in attention_names()}
    both = (attention(pair[0], 1), attention(pair[1], 1))
    out[f"parallel[{'+'.join(pair)}]"] = MixerSpec("parallel", both, "gate")
    out[f"serial[{'+'.join(pair)}]"] = MixerSpec("serial", both)
    out[f"fused[{'+'.join(pair)}]"] = MixerSpec("fused", both)
    return out


def _with_heads(mixer: MixerSpec, heads: int) -> MixerSpec:
    return replace(mixer, branches=tuple(replace(b, heads=heads) for b in mixer.branches))


def arch(mixer: MixerSpec, width: int, size: ProfileSize) -> ArchSpec:
    """The profile's model around ``mixer``: ``size.blocks`` pre-norm blocks with sinusoidal positions, which
    every attention type takes, behind the size's short convolution if it has one."""
    block = BlockSpec(_with_heads(mixer, size.heads))
    embedding = EmbeddingSpec("shortconv", size.stem) if size.stem else EmbeddingSpec()
    return ArchSpec(d_model=width, blocks=(block,) * size.blocks, position="sinusoidal", embedding=embedding)


def block_params(spec: ArchSpec) -> int:
    """Parameters of the blocks alone; embeddings and head are the same for every mixer."""
    model = build_model(spec, InputSpec(seq_len=8, vocab=8, num_outputs=8, per_token=True), seed=0)
    return sum(p.numel() for p in model.blocks.parameters())


@functools.lru_cache(maxsize=None)
def reference_params(size: ProfileSize) -> int:
    """Block parameters of the reference mixer at the size's width: the target every other mixer is matched to."""
    return block_params(arch(mixers(size.window)[REFERENCE], size.width, size))


def matched_width(mixer: MixerSpec, size: ProfileSize) -> tuple[int, int]:
    """(width, block parameters): the multiple of ``size.heads`` whose blocks come closest to the reference's."""
    target = reference_params(size)
    widths = range(size.heads, 4 * size.width + 1, size.heads)
    counts = {w: block_params(arch(mixer, w, size)) for w in widths}
    width = min(counts, key=lambda w: (abs(counts[w] - target), w))
    return width, counts[width]


@dataclass(frozen=True)
class Run:
    """One training run of the profile: a mixer on one probe level with one grid point."""

    mixer: str
    probe: str
    level: int
    settings: dict[str, Any]
    lr: float
    weight_decay: float
    width: int
    params: int


def plan(size: ProfileSize, probes: Iterable[str] = PROBES, names: Iterable[str] | None = None) -> list[Run]:
    """Every run of a profile, probe by probe and level by level, each mixer over the whole grid."""
    specs = mixers(size.window)
    names = list(specs) if names is None else list(names)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown mixer(s) {unknown}; allowed: {', '.join(specs)}")
    probes = list(probes)
    bad = [p for p in probes if p not in PROBES]
    if bad:
        raise ValueError(f"unknown probe(s) {bad}; allowed: {', '.join(PROBES)}")
    widths = {n: matched_width(specs[n], size) for n in names}
    return [Run(n, p, i, level, lr, wd, *widths[n])
            for p in probes for i, level in enumerate(levels(p, size))
            for n in names for lr in size.lrs for wd in size.weight_decays]


def train_run(run: Run, size: ProfileSize, *, device: str = "auto", seed: int = 0,
              cache_dir: str | Path = "results/cache") -> dict[str, Any]:
    """Train one run; its row: the settings, best validation accuracy and the test accuracy at that epoch."""
    trainer = probe_trainer(run.probe, run.settings, device=device, seed=seed, cache_dir=cache_dir)
    result = fit_probe(trainer, arch(mixers(size.window)[run.mixer], run.width, size), size, lr=run.lr,
                       weight_decay=run.weight_decay, seed=seed)
    return {"mixer": run.mixer, "probe": run.probe, "level": run.level, "task": task_name(run.probe, run.settings),
            "lr": run.lr,
            "weight_decay": run.weight_decay, "width": run.width, "params": run.params,
            "val": result.best_metric, "test": result.test_metric, "epochs": result.epochs,
            "seconds": round(result.train_seconds, 2), "stop": result.stop_reason, "device": str(trainer.device)}


def _child(args: tuple) -> dict[str, Any]:
    run, size, device, seed, cache_dir, threads = args
    torch.set_num_threads(threads)
    return train_run(run, size, device=device, seed=seed, cache_dir=cache_dir)


def profile(size: ProfileSize = CPU, *, probes: Iterable[str] = PROBES, names: Iterable[str] | None = None,
            device: str = "auto", seed: int = 0, cache_dir: str | Path = "results/cache", jobs: int = 1,
            progress: Callable[[str], None] | None = functools.partial(print, flush=True)) -> pd.DataFrame:
    """Train every run of the profile (``jobs`` at a time, in processes of their own); one row per run."""
    runs = plan(size, probes, names)
    # Data first, in this process: runs in parallel would otherwise draw and cache the same set together.
    for task in dict.fromkeys(task_name(r.probe, r.settings) for r in runs):
        load_task(task, seed=seed, cache_dir=cache_dir)
    threads = max(1, torch.get_num_threads() // jobs)
    work = [(run, size, device, seed, str(cache_dir), threads) for run in runs]
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        if progress is not None:
            spent = time.perf_counter() - start
            left = spent / len(rows) * (len(runs) - len(rows))
            progress(f"profile [{len(rows)}/{len(runs)}] {row['mixer']} on {row['task']} lr={row['lr']:g} "
                     f"wd={row['weight_decay']:g}: test {row['test']:.3f} "
                     f"({spent / 60:.1f} min, ~{left / 60:.1f} min left)")

    if jobs == 1:
        for item in work:
            report(_child(item))
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for row in pool.imap(_child, work):
                report(row)
    table = pd.DataFrame(rows)
    for key, value in asdict(size).items():
        table[f"size_{key}"] = str(value) if isinstance(value, tuple) else value
    return table


def profile_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mixer x probe: each level's best test accuracy over the grid, averaged over levels (MAD's score), plus
    ``mean`` over probes; rows keep the order the runs came in."""
    best = runs.groupby(["mixer", "probe", "level"], sort=False)["test"].max()
    scores = best.groupby(["mixer", "probe"], sort=False).mean().unstack("probe")
    scores = scores[[p for p in PROBES if p in scores.columns]]
    scores = scores.loc[list(dict.fromkeys(runs["mixer"]))]
    scores["mean"] = scores.mean(axis=1)
    scores.index.name = "mixer"
    return scores


def parts(spec: ArchSpec) -> list[str]:
    """The profile rows that describe ``spec``: each attention type it uses, and each of its multi-branch mixers
    that the profile measured (those over :data:`PAIR`), in the order they first appear."""
    known = mixers(window=1)  # the names only; they do not depend on the window
    names: list[str] = []
    for block in spec.blocks:
        mixer = block.mixer
        names += [branch.type for branch in mixer.branches]
        if mixer.topology != "single" and tuple(b.type for b in mixer.branches) == PAIR:
            names.append(next(n for n in known if n.startswith(f"{mixer.topology}[")))
    return list(dict.fromkeys(names))


def capability_panel(scores: pd.DataFrame, spec: ArchSpec) -> pd.DataFrame:
    """The profile rows of ``spec``'s parts, then the stock Transformer's (dot) row, each with its role."""
    rows = [(name, "winner's part") for name in parts(spec) if name in scores.index]
    if STOCK in scores.index:
        rows.append((STOCK, "stock Transformer" if STOCK not in dict(rows) else "winner's part and stock Transformer"))
        rows = list(dict(rows).items())
    panel = scores.loc[[name for name, _ in rows]].copy()
    panel.insert(0, "role", [role for _, role in rows])
    return panel


def device_class(device: str | torch.device) -> str:
    """``cpu``, ``cuda`` or ``mps``: the profile of one device class stands for every device of it."""
    return torch.device(str(device)).type


def profile_path(folder: str | Path, device: str | torch.device) -> Path:
    """Where the profile suite writes its runs for a device class, and where a report looks for them."""
    return Path(folder) / f"profile_{device_class(device)}.csv"


def load_profile(folder: str | Path, device: str | torch.device) -> pd.DataFrame | None:
    """The profile table for ``device``'s class, or None when that profile has not been run."""
    path = profile_path(folder, device)
    return profile_table(pd.read_csv(path)) if path.is_file() else None


__all__ = ["CPU", "FULL", "PAIR", "REFERENCE", "SIZES", "STOCK", "ProfileSize", "Run", "arch", "block_params",
           "capability_panel", "device_class", "levels", "load_profile", "matched_width", "mixers", "parts", "plan",
           "profile", "profile_path", "profile_table", "reference_params", "train_run"]
