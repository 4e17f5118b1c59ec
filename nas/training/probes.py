"""Training a model on one MAD probe at a stated size: the capability profile's runs and the search's probe
objectives (``--objectives accuracy,probe:in_context_recall``) both go through here, so a candidate's probe score
and the profile's rows mean the same thing."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.data import load_task
from nas.data.mad import LEVELS, PROBES, task_name
from nas.models.model import build_model
from nas.models.spec import ArchSpec, EmbeddingSpec
from nas.training.trainer import FitResult, Trainer, TrainConfig


@dataclass(frozen=True)
class ProfileSize:
    """How large a profile is: model, data, training and grid; written beside the figures it produced."""

    name: str
    width: int  # the reference (dot) model's width; the others are matched to its parameters
    heads: int
    blocks: int
    batch: int
    epochs: int | None  # per run; None: enough epochs for ``steps`` optimiser steps on each level's training set
    steps: int | None
    seconds: float | None  # wall-time cap of one run's training (the best epoch so far stands); None: no cap
    n_train: int | None  # at most this many training sequences per level; None: MAD's own counts
    n_eval: int  # validation and test sequences each
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    all_levels: bool  # every difficulty level (MAD), or each probe's baseline only
    window: int  # the sliding window of ``local`` attention, each side
    stem: tuple[int, ...] = ()  # kernels of a short convolution over the token embeddings; (): the table alone (MAD)

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"size {self.name}: give exactly one of epochs={self.epochs} and steps={self.steps}")

    def epochs_for(self, n_train: int) -> int:
        """Epochs of a run on ``n_train`` sequences: the size's own, or as many as make up its steps."""
        return self.epochs if self.epochs is not None else max(1, round(self.steps * self.batch / n_train))

    def describe(self) -> str:
        length = f"{self.epochs} epochs" if self.epochs is not None else f"about {self.steps} optimiser steps a run"
        length += f" (at most {self.seconds:g} s of training)" if self.seconds else ""
        data = "MAD's example counts" if self.n_train is None else f"<= {self.n_train} training sequences"
        levels = "every difficulty level" if self.all_levels else "baseline difficulty only"
        return (f"size {self.name}: width {self.width} (dot; others matched), {self.heads} heads, "
                f"{self.blocks} blocks, batch {self.batch}, {length}, {data}, {self.n_eval} validation and test sequences, "
                f"lr {list(self.lrs)} x weight decay {list(self.weight_decays)}, {levels}, local window {self.window}, "
                + (f"every mixer behind a short convolution (kernels {list(self.stem)})" if self.stem
                   else "token embeddings as MAD's"))


FULL = ProfileSize("full", width=128, heads=16, blocks=2, batch=128, epochs=200, steps=None, seconds=None,
                   n_train=None, n_eval=1280, lrs=(1e-4, 5e-4, 1e-3), weight_decays=(0.0, 0.1), all_levels=True,
                   window=32)
"""MAD's own: width 128, 16 heads, batch 128, 200 epochs, its grid and every level; a GPU's work."""
CPU = ProfileSize("cpu", width=32, heads=4, blocks=2, batch=64, epochs=None, steps=400, seconds=120,
                  n_train=4000, n_eval=256, lrs=(3e-3,), weight_decays=(0.0,), all_levels=False, window=32,
                  stem=(3,))
"""Sized for a 30-minute budget on 2 CPU cores (two runs at a time, one thread each). Recall through attention
alone forms after thousands of steps (MAD trains 20,000); behind a short convolution, as H3, Hyena and Based
put one, it forms within a few hundred, which a CPU can give every mixer, so the CPU size adds one and spends
its time on steps rather than on a grid. The time cap lets the composites (two attentions each) finish the
recall probes: a run that would pass it fits its learning-rate schedule to the epochs that fit, and a cap that
cut them to 4 of 6 epochs kept recall from forming. It still stops additive attention (a (T, T, head) tensor)
and the 256-token selective copy early, so those get fewer steps than the rest; each run's ``stop`` column
says so."""
SIZES = {size.name: size for size in (CPU, FULL)}



def levels(probe: str, size: ProfileSize) -> list[dict[str, Any]]:
    """The probe's difficulty levels at ``size``: training sets capped, evaluation sets as the size says."""
    chosen = LEVELS[probe] if size.all_levels else LEVELS[probe][:1]
    cap = size.n_train or math.inf
    return [{**level, "n_train": min(level["n_train"], cap), "n_val": size.n_eval, "n_test": size.n_eval}
            for level in chosen]


def probe_arch(spec: ArchSpec, size: ProfileSize) -> ArchSpec:
    """``spec``'s blocks, width, positions and dropout, fed token ids the size's way (patch 1, and the size's short
    convolution if it has one): the part a probe measures is the token mixing, not the task's own embedding."""
    embedding = EmbeddingSpec("shortconv", size.stem) if size.stem else EmbeddingSpec()
    return replace(spec, patch=1, embedding=embedding)


def probe_trainer(probe: str, settings: dict[str, Any], *, device: str = "auto", seed: int = 0,
                  cache_dir: str | Path = "results/cache") -> Trainer:
    """A trainer on one level of ``probe``, its tensors on ``device``: made once, it fits any number of models."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; allowed: {', '.join(PROBES)}")
    return Trainer(load_task(task_name(probe, settings), seed=seed, cache_dir=cache_dir), device)


def fit_probe(trainer: Trainer, spec: ArchSpec, size: ProfileSize, *, lr: float, weight_decay: float,
              seed: int = 0) -> FitResult:
    """Train ``spec`` (built as given) on the probe level of ``trainer`` with the size's batch, length and time cap."""
    model = build_model(spec, trainer.input_spec, seed=seed)
    config = TrainConfig(lr=lr, weight_decay=weight_decay, batch_size=size.batch, seed=seed,
                         max_epochs=size.epochs_for(len(trainer.train)), time_limit=size.seconds)
    return trainer.fit(model, config)


__all__ = ["CPU", "FULL", "SIZES", "ProfileSize", "fit_probe", "levels", "probe_arch", "probe_trainer"]
