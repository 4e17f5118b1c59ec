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

from nas.models.spec import ArchSpec
from nas.training.probes import CPU, levels, probe_arch, train_probe

PROBE_SIZE = CPU
"""The size a probe objective trains at on every device: each probe costs a trial at most the size's time cap, not a
GPU's hours."""


def score_probes(spec: ArchSpec, probes: Iterable[str], *, device: str | torch.device, seed: int,
                 cache_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per probe: ``val`` (the objective), ``test``, epochs, seconds and why training stopped, if early.

    A probe that diverges before one finite epoch raises, so its trial fails with the reason.
    """
    size = PROBE_SIZE
    scores: dict[str, dict[str, Any]] = {}
    for probe in probes:
        task, _, result = train_probe(probe_arch(spec, size), probe, levels(probe, size)[0], size,
                                      lr=size.lrs[0], weight_decay=size.weight_decays[0], device=str(device),
                                      seed=seed, cache_dir=cache_dir)
        if result.best_metric is None:  # diverged before one finite epoch: the trial fails with this reason
            raise FloatingPointError(f"probe {probe}: {result.stop_reason}")
        scores[probe] = {"task": task.name, "val": result.best_metric, "test": result.test_metric,
                         "epochs": result.epochs, "seconds": round(result.train_seconds, 2), "stop": result.stop_reason}
    return scores


__all__ = ["PROBE_SIZE", "score_probes"]
