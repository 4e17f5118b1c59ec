"""Several worker processes on one study: the calling process and spawned ones, each on its device.

Optuna's RDB storage is the shared state; a worker is the same trial loop the
one-process search runs (:func:`nas.search.loop.run_trials`), with its own sampler
seed, and each spawned worker opens the storage itself. Many machines: run the
same command on each, pointed at one PostgreSQL storage.

>>> assign_devices(("cuda:0", "cuda:1"), jobs=3, default="auto")
['cuda:0', 'cuda:1', 'cuda:0']
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import IO, Any, Callable

import torch

from nas.training.device import resolve_device

EXIT_CODES = {"done": 0, "failing": 1, "timeout": 3, "interrupted": 130}
WORST_FIRST = ("interrupted", "failing", "timeout", "done")


def assign_devices(devices: tuple[str, ...] | None, jobs: int, default: str) -> list[str]:
    """The device of each of ``jobs`` workers: ``devices`` in turn, or every CUDA device when ``default`` is auto.

    Several workers may share one device (small trials); each named device must exist.
    """
    if devices is not None and not devices:
        raise ValueError("devices=() names no device; give at least one, e.g. --devices 0,1 or --devices cpu")
    if devices is None:
        count = torch.cuda.device_count() if default == "auto" else 0
        devices = tuple(f"cuda:{i}" for i in range(count)) if count > 1 else (default,)
    names = [str(resolve_device(_device_name(d))) for d in devices]
    return [names[i % len(names)] for i in range(jobs)]


def _device_name(text: str) -> str:
    return f"cuda:{text}" if text.strip().isdigit() else text.strip()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_workers(devices: list[str]) -> int:
    return sum(torch.device(d).type == "cpu" for d in devices)


def cpu_threads(devices: list[str]) -> int:
    """Torch threads per worker: the cores shared among the CPU workers.

    Each process otherwise takes one thread per core, so 2 workers on 2 cores ran
    4 threads and were 8x slower than one worker (measured by the workers benchmark).
    """
    return max(1, _cores() // max(1, _cpu_workers(devices)))


def crowding(devices: list[str]) -> str | None:
    """A note when CPU workers outnumber the cores: they then take turns, and the workers benchmark
    measured 4 workers on 2 cores slower than 2."""
    workers, cores = _cpu_workers(devices), _cores()
    if workers <= cores:
        return None
    return f"note: {workers} workers on the CPU share {cores} cores; more workers than cores adds no speed"


def run_workers(config: Any, name: str, url: str, devices: list[str], existing: int, out: IO[str],
                inline: Callable[[], str]) -> str:
    """Run worker 0 in this process and one spawned worker for each further device, until all end; returns
    the worst status.

    ``inline`` is this process's trial loop, set up already, so it trains while the spawned workers import
    torch and load the task (seconds each: see the ``workers`` benchmark).
    """
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's storage connections
    threads = cpu_threads(devices)
    workers = [context.Process(target=_work, args=(config, name, url, index, device, existing, threads),
                               name=f"nas-worker-{index}") for index, device in enumerate(devices) if index > 0]
    for worker in workers:
        worker.start()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        statuses = [inline()]
    finally:
        torch.set_num_threads(previous)
        for worker in workers:
            worker.join()
    for index, worker in enumerate(workers, start=1):
        status = next((s for s, code in EXIT_CODES.items() if code == worker.exitcode), None)
        if status is None:
            print(f"worker {index} died with exit code {worker.exitcode}; its trial runs again once its heartbeat is stale",
                  file=out)
            status = "failing"
        statuses.append(status)
    return next(s for s in WORST_FIRST if s in statuses)


def _work(config: Any, name: str, url: str, index: int, device: str, existing: int, threads: int) -> None:
    import optuna

    from nas.data import load_task
    from nas.search.loop import run_trials
    from nas.search.space import load_space
    from nas.search.storage import open_storage
    from nas.search.budget import plan_budget
    from nas.search.study import curve_pruning, load_search_study, worker_seed
    from nas.training.trainer import Trainer

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(threads)
    storage = open_storage(url)
    stored = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    space = load_space(config.space).renamed_against(stored.get("space_origin", stored["space_content"]))
    task = load_task(config.task, seed=config.seed, cache_dir=Path(config.results_dir) / "cache")
    trainer, budget = Trainer(task, device), plan_budget(task, config, space.largest_batch())
    objectives = tuple(stored.get("objectives", [task.metric]))
    study = load_search_study(config, name, storage, trainer.larger_is_better, worker_seed(config.seed, existing, index),
                              budget, objectives)
    curves = curve_pruning(config, study, storage, trainer.larger_is_better, budget)
    status = run_trials(study, storage, space, trainer, config, study.get_trials(deepcopy=False), sys.stdout,
                        bar=False, speaks=False, curves=curves, budget=budget, task=task)
    sys.stdout.flush()
    sys.stderr.flush()
    # Every result is committed; skip the interpreter's teardown of torch and its libraries.
    os._exit(EXIT_CODES[status])


__all__ = ["assign_devices", "cpu_threads", "crowding", "run_workers"]
