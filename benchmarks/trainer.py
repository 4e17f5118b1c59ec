"""Suite ``trainer``: the trainer's time per epoch against a bare hand-written loop doing the same work.

Both train the same model from the same initial weights on the same batches, in
the same order, with the same optimiser, schedule, clipping and per-epoch
validation; the difference is the trainer's machinery (callbacks, best-state
copies, guards). A third arm writes a crash-recovery checkpoint (model,
optimiser, schedule, curve) after every epoch, the most a search could ask;
the search itself writes one at most every ``CHECKPOINT_SECONDS``. Runs
alternate between the arms, and the median epoch counts.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks import register_suite  # noqa: E402
from benchmarks.attention import machine  # noqa: E402
from nas.models.model import build_model  # noqa: E402
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec  # noqa: E402
from nas.data import load_task  # noqa: E402
from nas.training.checkpoint import save_checkpoint  # noqa: E402
from nas.training.trainer import Trainer, TrainConfig, make_optimizer, WarmupCosine  # noqa: E402

MODELS = {
    "small: 1x dot d=32": ArchSpec(32, (BlockSpec(MixerSpec("single", (AttentionSpec("dot", 2),))),)),
    "medium: 2x parallel d=64": ArchSpec(64, (BlockSpec(MixerSpec(
        "parallel", (AttentionSpec("dot", 4), AttentionSpec("cosine", 4)), "gate")),) * 2),
}


def bare_epochs(trainer: Trainer, model: nn.Module, config: TrainConfig) -> list[float]:
    """The reference: the same training written out by hand, seconds per epoch."""
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    model.to(trainer.device).train()
    optimizer = make_optimizer(model, config, trainer.device)
    steps = config.max_epochs * math.ceil(len(trainer.train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(steps, config.warmup))
    x, y, val = trainer.train.x, trainer.train.y, trainer.val
    seconds = []
    for _ in range(config.max_epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=shuffle).to(trainer.device)
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            with trainer.autocast():
                loss = nn.functional.cross_entropy(model(x[idx], None).float(), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad(), trainer.autocast():
            float((model(val.x, None).argmax(-1) == val.y).float().mean())
        model.train()
        seconds.append(time.perf_counter() - start)
    return seconds


@register_suite("trainer")
def trainer_suite(out_dir: Path, device: str = "auto", quick: bool = False) -> pd.DataFrame:
    """Median seconds per epoch, trainer against bare loop, on digits; writes trainer.csv and trainer.png."""
    task = load_task("digits")
    trainer = Trainer(task, device)
    config = TrainConfig(max_epochs=3 if quick else 6, batch_size=64)
    rounds = 1 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-trainer-") as folder:
        checkpoint = Path(folder) / "trial.pt"
        for label, spec in MODELS.items():
            times: dict[str, list[float]] = {"trainer": [], "checkpointed": [], "bare": []}
            for _ in range(rounds):
                # Alternate so drifting machine load hits all alike; the first epoch of each run is warm-up.
                times["trainer"] += trainer.fit(build_model(spec, task.input_spec, seed=0), config).epoch_seconds[1:]
                times["checkpointed"] += trainer.fit(
                    build_model(spec, task.input_spec, seed=0), config,
                    on_checkpoint=lambda state: save_checkpoint(checkpoint, state)).epoch_seconds[1:]
                times["bare"] += bare_epochs(trainer, build_model(spec, task.input_spec, seed=0), config)[1:]
            median = {arm: statistics.median(seconds) for arm, seconds in times.items()}
            rows.append({"model": label, "trainer_s_per_epoch": median["trainer"],
                         "checkpointed_s_per_epoch": median["checkpointed"], "bare_s_per_epoch": median["bare"],
                         "overhead_pct": 100 * (median["trainer"] / median["bare"] - 1),
                         "checkpointed_overhead_pct": 100 * (median["checkpointed"] / median["bare"] - 1)})
    table = pd.DataFrame(rows).assign(epochs_timed=len(times["bare"]), batch=config.batch_size,
                                      device=str(trainer.device), machine=machine(str(trainer.device)))
    table.to_csv(out_dir / "trainer.csv", index=False)
    _plot(table, out_dir / "trainer.png")
    return table


def _plot(table: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    positions = range(len(table))
    ax.barh([p + 0.27 for p in positions], table["bare_s_per_epoch"] * 1000, height=0.27, label="bare loop")
    ax.barh(list(positions), table["trainer_s_per_epoch"] * 1000, height=0.27, label="Trainer")
    ax.barh([p - 0.27 for p in positions], table["checkpointed_s_per_epoch"] * 1000, height=0.27,
            label="Trainer, checkpoint every epoch")
    ax.set_yticks(list(positions), labels=[f"{m}\n({o:+.1f}%, {c:+.1f}%)" for m, o, c in zip(
        table["model"], table["overhead_pct"], table["checkpointed_overhead_pct"])])
    ax.set(xlabel="milliseconds per epoch (median)", title=f"Trainer overhead on digits, {table['machine'].iloc[0]}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
