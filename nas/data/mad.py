"""``mad:<probe>``: the six synthetic capability probes of MAD (Poli et al., ICML 2024), generated locally.

MAD scores an architecture per probe by averaging its accuracy over a sweep of
difficulty levels, so :data:`LEVELS` holds that sweep (baseline first, then each
of MAD's ``changes`` applied alone, from ``configs/tasks/*.yml`` of
github.com/athms/mad-lab) and the defaults are the baseline. Parameters go in the
name: ``load_task("mad:noisy_recall:frac_noise=0.4,seq_len=256")``.

Targets are the probe's only (accuracy on them is MAD's score), in every split:
MAD trains its recall probes on all next tokens, which a model that sees the
whole sequence would copy from the input (see :mod:`nas.data.mad_probes`).
MAD has a train and a test set; the validation set is drawn like the test set.

No validation or test sequence repeats a training sequence: MAD only warns when
more than 0.1% do (``check_for_leakage`` in ``mad/data/dataset.py``); here they
are redrawn, and settings too small to allow that are refused. Memorization's
key-value dictionary is the same in every split by design (it is what is to be
learnt); only its sequences are kept apart. Sets are cached under ``cache_dir``,
keyed by the probe, every setting and the seed: the longest levels take a while.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nas.core.registry import unknown_name_message
from nas.data import mad_probes
from nas.data.base import RECALL_PLATEAU_STEPS, Split, Task, TaskError
from nas.data.prepare import split_rng
from nas.data.registry import coerce_param, parse_params, register_task
from nas.data.spec import InputSpec
from nas.core.files import write_atomically

PROBES = ("in_context_recall", "fuzzy_recall", "noisy_recall", "selective_copy", "compression", "memorization")
SIZES = {"n_val": 1280, "n_test": 1280}  # MAD's num_test_examples; validation drawn alike
_TRAIN = {"n_train": 12800}
BASELINE: dict[str, dict[str, Any]] = {
    "in_context_recall": {"vocab": 16, "seq_len": 128, **_TRAIN},
    "fuzzy_recall": {"vocab": 16, "seq_len": 128, "key_len": 3, "value_len": 3, **_TRAIN},
    "noisy_recall": {"vocab": 32, "seq_len": 128, "noise_vocab": 16, "frac_noise": 0.2, **_TRAIN},
    "selective_copy": {"vocab": 16, "seq_len": 256, "to_copy": 16, **_TRAIN},
    "compression": {"vocab": 16, "seq_len": 32, **_TRAIN},
    "memorization": {"vocab": 256, "seq_len": 32, "n_train": 256},
}
"""MAD's baseline setting of each probe (``baseline`` in its task config)."""
_FEWER = {"n_train": [6400, 3200, 1600, 800]}
_RECALL = {"vocab": [32, 64, 128], "seq_len": [256, 512, 1024], **_FEWER}
CHANGES: dict[str, dict[str, list[Any]]] = {
    "in_context_recall": _RECALL,
    "fuzzy_recall": _RECALL,
    "noisy_recall": {**_RECALL, "vocab": [48, 80, 144], "frac_noise": [0.4, 0.6, 0.8]},  # vocab: 16 noise ids more
    "selective_copy": {"vocab": [32, 64, 128], "seq_len": [512, 1024], **_FEWER, "to_copy": [32, 64, 96]},
    "compression": {"vocab": [32, 64, 128], "seq_len": [64, 128, 256], **_FEWER},
    "memorization": {"vocab": [512, 1024, 2048, 4096, 8192]},
}
"""MAD's difficulty sweep: each value replaces the baseline's alone (``changes`` in its task config)."""
LEVELS: dict[str, list[dict[str, Any]]] = {
    probe: [dict(base)] + [{**base, key: value} for key, values in CHANGES[probe].items() for value in values]
    for probe, base in BASELINE.items()
}
"""Every difficulty level of each probe, baseline first; e.g. ``LEVELS["compression"][1]["vocab"] == 32``."""
GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "in_context_recall": mad_probes.in_context_recall,
    "fuzzy_recall": mad_probes.fuzzy_recall,
    "noisy_recall": mad_probes.in_context_recall,
    "selective_copy": mad_probes.selective_copy,
    "compression": mad_probes.compression,
    "memorization": mad_probes.memorization,
}
SPLITS = ("train", "val", "test")
REDRAWS = 100  # rounds of redrawing held-out sequences that repeat training ones before giving up
CACHE_VERSION = 1  # bump when a generator changes, so old caches are not reused


def probe_settings(probe: str, **overrides: Any) -> dict[str, Any]:
    """The full settings of ``probe``: its baseline with ``overrides`` (strings are converted), checked."""
    if probe not in PROBES:
        raise TaskError(unknown_name_message("MAD probe", probe, PROBES))
    family = f"mad:{probe}"
    defaults = {**BASELINE[probe], **SIZES}
    for key, value in overrides.items():
        if key not in defaults:
            raise TaskError(unknown_name_message(f"parameter of task {family!r}", key, tuple(defaults)))
        defaults[key] = coerce_param(family, key, value, defaults[key])
    _check(probe, defaults)
    return defaults


def _least_vocab(probe: str, s: dict[str, Any]) -> tuple[int, str]:
    """The smallest vocabulary ``probe`` works with under settings ``s``, and what takes up those ids."""
    if probe == "fuzzy_recall":
        least = 2 + max(2 * s["key_len"], 2 * s["value_len"] - 1)
        return least, (f"padding, the query marker and two halves for keys of {s['key_len']} and values of "
                       f"{s['value_len']} distinct tokens")
    noise = s.get("noise_vocab", 0)
    return {
        "in_context_recall": (3, "the query marker, a key and a value"),
        "noisy_recall": (3 + noise, f"the query marker, {noise} noise ids, a key and a value"),
        "selective_copy": (3, "the blank, the copy token and a token to copy"),
        "compression": (2, "the compression token and a token"),
        "memorization": (3, "the insert token, a key and a value"),
    }[probe]


def _check(probe: str, s: dict[str, Any]) -> None:
    family, vocab, seq_len = f"mad:{probe}", s["vocab"], s["seq_len"]
    sizes = tuple(s[f"n_{split}"] for split in SPLITS)
    if min(sizes) < 1:
        raise TaskError(f"{family}: n_train/n_val/n_test={sizes} must all be >= 1")
    for key, low in (("key_len", 1), ("value_len", 1), ("to_copy", 1), ("noise_vocab", 0)):
        if key in s and s[key] < low:
            raise TaskError(f"{family}: {key}={s[key]} must be >= {low}")
    if not 0 <= s.get("frac_noise", 0) < 1:  # also refuses nan
        raise TaskError(f"{family}: frac_noise={s['frac_noise']} must be in [0, 1)")
    if s.get("frac_noise", 0) > 0 and s["noise_vocab"] < 1:
        raise TaskError(f"{family}: frac_noise={s['frac_noise']} needs noise_vocab >= 1, got {s['noise_vocab']}")
    least, why = _least_vocab(probe, s)
    if vocab < least:
        raise TaskError(f"{family}: vocab={vocab} is too small for {why}; use vocab >= {least}")
    if probe in ("in_context_recall", "noisy_recall", "memorization"):
        low = 2 if probe == "memorization" else 4
        if seq_len < low or seq_len % 2:
            what = "key-insert pairs" if probe == "memorization" else "key-value pairs, the last a query"
            raise TaskError(f"{family}: seq_len={seq_len} must be even and >= {low} ({what})")
    elif probe == "fuzzy_recall" and seq_len <= 2 * (s["key_len"] + s["value_len"]):
        raise TaskError(f"{family}: seq_len={seq_len} must be > 2 * (key_len + value_len) = "
                        f"{2 * (s['key_len'] + s['value_len'])} (the longest pair and its query)")
    elif probe == "selective_copy" and seq_len <= 2 * s["to_copy"] + 1:
        raise TaskError(f"{family}: seq_len={seq_len} must be > 2 * to_copy + 1 = {2 * s['to_copy'] + 1} "
                        f"(tokens, the copy token and the outputs)")
    elif probe == "compression" and seq_len < 2:
        raise TaskError(f"{family}: seq_len={seq_len} must be >= 2 (tokens and the compression token)")


def task_name(probe: str, settings: dict[str, Any]) -> str:
    """Canonical name: ``mad:<probe>`` plus the settings that differ from the baseline, sorted."""
    defaults = {**BASELINE[probe], **SIZES}
    changed = [f"{k}={v}" for k, v in sorted(settings.items()) if v != defaults[k]]
    return f"mad:{probe}:{','.join(changed)}" if changed else f"mad:{probe}"


def load_mad(probe_and_params: str, *, seed: int, cache_dir: Path) -> Task:
    """``probe`` or ``probe:key=value,...``; per-token accuracy over the probe's targets."""
    probe, _, text = probe_and_params.partition(":")
    settings = probe_settings(probe)  # the probe's name is checked before its parameters
    if text:
        settings = probe_settings(probe, **parse_params(f"mad:{probe}", text))
    path = cache_path(cache_dir, probe, settings, seed)
    data = _read_cache(path, settings)
    if data is None:
        data = generate_splits(probe, settings, seed)
        _write_cache(path, data, settings["vocab"])
    splits = [Split(torch.from_numpy(data[f"{s}_x"]), torch.from_numpy(data[f"{s}_y"])) for s in SPLITS]
    vocab = settings["vocab"]
    spec = InputSpec(seq_len=settings["seq_len"], num_outputs=vocab, vocab=vocab, per_token=True,
                     bottleneck=probe == "compression")  # MAD's autoencoder: decode all from the last token
    plateau = RECALL_PLATEAU_STEPS if probe.endswith("recall") else 0
    return Task(task_name(probe, settings), *splits, input_spec=spec, metric="accuracy", classes=None, seed=seed,
                plateau_steps=plateau)


register_task("mad", argument="probe", listing=lambda: list(PROBES))(load_mad)


def generate_splits(probe: str, settings: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    """``{split}_x`` and ``{split}_y`` for each split, each split from its own stream of ``seed``."""
    kwargs = {k: v for k, v in settings.items() if not k.startswith("n_")}
    if probe == "memorization":  # one dictionary for all splits, from a stream of its own
        kwargs["table"] = mad_probes.memorization_table(settings["vocab"], split_rng(seed, len(SPLITS)))
    data: dict[str, np.ndarray] = {}
    for stream, split in enumerate(SPLITS):
        rng = split_rng(seed, stream)

        def draw(n: int, rng: np.random.Generator = rng, training: bool = split == "train") -> tuple[np.ndarray, np.ndarray]:
            return GENERATORS[probe](n, rng, training=training, **kwargs)

        x, y = draw(settings[f"n_{split}"])
        if split != "train":
            x, y = _apart_from(data["train_x"], x, y, draw, f"mad:{probe}: {split}")
        data[f"{split}_x"], data[f"{split}_y"] = x, y
    return data


def _row_hashes(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row; equal rows hash equal, so a match is at worst a needless redraw."""
    weights = np.random.default_rng(0x4D4144).integers(1, 2**63, size=x.shape[1], dtype=np.uint64)
    return (x.astype(np.uint64) * weights).sum(axis=1)


def _apart_from(train: np.ndarray, x: np.ndarray, y: np.ndarray, draw: Callable, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Redraw the rows of ``x`` (and ``y``) that repeat a row of ``train`` until none does."""
    seen = _row_hashes(train)
    for _ in range(REDRAWS):
        repeats = np.isin(_row_hashes(x), seen)
        if not repeats.any():
            return x, y
        x[repeats], y[repeats] = draw(int(repeats.sum()))
    raise TaskError(f"{what}: {int(repeats.sum())} of {len(x)} sequences still repeat training sequences after "
                    f"{REDRAWS} redraws; these settings allow too few distinct sequences (raise vocab or seq_len, "
                    f"or lower n_train)")


def cache_path(cache_dir: Path, probe: str, settings: dict[str, Any], seed: int) -> Path:
    """``<cache_dir>/mad-<probe>-<hash>.pt``, the hash over every setting, the seed and the generator version."""
    key = json.dumps({"probe": probe, **settings, "seed": seed, "version": CACHE_VERSION}, sort_keys=True)
    return Path(cache_dir) / f"mad-{probe}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _read_cache(path: Path, settings: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The cached arrays as int64, or None when absent, unreadable or of the wrong shape (then redrawn)."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
    except Exception:  # a truncated or foreign file is not the user's error: regenerate it
        return None
    names = {f"{s}_{a}" for s in SPLITS for a in "xy"}
    if not isinstance(stored, dict) or set(stored) != names:
        return None
    shapes = {f"{s}_{a}": (settings[f"n_{s}"], settings["seq_len"]) for s in SPLITS for a in "xy"}
    if any(tuple(stored[k].shape) != shape for k, shape in shapes.items()):
        return None
    return {k: v.to(torch.int64).numpy() for k, v in stored.items()}


def _write_cache(path: Path, data: dict[str, np.ndarray], vocab: int) -> None:
    """Small integers on disk; written to a temporary file beside ``path`` and renamed, so no reader sees half."""
    dtype = torch.int16 if vocab <= torch.iinfo(torch.int16).max else torch.int32
    tensors = {k: torch.from_numpy(v).to(dtype) for k, v in data.items()}
    write_atomically(path, lambda tmp: torch.save(tensors, tmp))
