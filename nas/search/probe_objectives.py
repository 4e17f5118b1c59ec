"""Probe objectives: a candidate's token mixing scored on MAD probes, so a search can trade its task's accuracy
against a skill (``--objectives accuracy,probe:in_context_recall``).

The candidate's blocks, width and positions train on the probe's baseline level
at the capability profile's CPU size (:data:`nas.training.probes.CPU`, stated in
its ``describe()``), so a score here reads like a row of the profile. The
objective is the probe's best validation accuracy; its test accuracy is recorded
beside it and never steers the search. Every candidate sees the same probe data
and the same initial seed, so scores differ by architecture alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch

from nas.data.mad import task_name
from nas.models.spec import ArchSpec
from nas.training.probes import CPU, fit_probe, levels, probe_arch, probe_trainer
from nas.training.trainer import Trainer

PROBE_SIZE = CPU
"""The size a probe objective trains at on every device: each probe costs a trial at most the size's time cap, not a
GPU's hours."""


class ProbeScorer:
    """Scores candidates on a search's probe objectives. Each probe's data is loaded and put on the device once, at
    the first candidate, not once a trial."""

    def __init__(self, probes: Iterable[str], *, device: str | torch.device, seed: int, cache_dir: str | Path):
        self.probes, self.device, self.seed, self.cache_dir = list(probes), str(device), seed, cache_dir
        self._trainers: dict[str, tuple[str, Trainer]] = {}

    def _trainer(self, probe: str) -> tuple[str, Trainer]:
        if probe not in self._trainers:
            level = levels(probe, PROBE_SIZE)[0]
            self._trainers[probe] = (task_name(probe, level), probe_trainer(
                probe, level, device=self.device, seed=self.seed, cache_dir=self.cache_dir))
        return self._trainers[probe]

    def __call__(self, spec: ArchSpec) -> dict[str, dict[str, Any]]:
        """Per probe: ``val`` (the objective), ``test``, epochs, seconds and why training stopped, if early.

        A probe that diverges before one finite epoch raises, so its trial fails with the reason.
        """
        size = PROBE_SIZE
        scores: dict[str, dict[str, Any]] = {}
        for probe in self.probes:
            name, trainer = self._trainer(probe)
            result = fit_probe(trainer, probe_arch(spec, size), size, lr=size.lrs[0],
                               weight_decay=size.weight_decays[0], seed=self.seed)
            if result.best_metric is None:  # diverged before one finite epoch: the trial fails with this reason
                raise FloatingPointError(f"probe {probe}: {result.stop_reason}")
            scores[probe] = {"task": name, "val": result.best_metric, "test": result.test_metric,
                             "epochs": result.epochs, "seconds": round(result.train_seconds, 2),
                             "stop": result.stop_reason}
        return scores


__all__ = ["PROBE_SIZE", "ProbeScorer"]
