"""``mqar``: multi-query associative recall, generated as in the Zoology benchmark (Arora et al., 2023).

A sequence opens with ``pairs`` key-value pairs ``k1 v1 k2 v2 ...`` (keys from
``1 .. vocab/2 - 1``, values from ``vocab/2 .. vocab - 1``, distinct within a
sequence). Every key is queried once in the remainder, at an even offset drawn
without replacement from a power law that favours early offsets; all other
positions hold random tokens from the whole vocabulary. The label at a query is
the value paired with its key and ``-100`` elsewhere, so a model must recall
many associations at once, which is what separates attention from its cheap
approximations.
"""

from __future__ import annotations

import numpy as np
import torch

from nas.data.spec import InputSpec
from nas.data.base import IGNORE_INDEX, RECALL_PLATEAU_STEPS, Split, Task, TaskError
from nas.data.prepare import split_rng
from nas.data.registry import register_task


def generate_mqar(
    n: int, *, vocab: int, seq_len: int, pairs: int, power_a: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, both int64 ``(n, seq_len)``; Zoology's ``multiquery_ar`` rules, vectorised.

    Zoology draws each row with ``np.random.choice(replace=False)``; here the same
    distributions come from random sort keys (uniform) and Gumbel top-k (weighted).
    """
    half = vocab // 2
    keys = rng.random((n, half - 1)).argsort(axis=1)[:, :pairs] + 1  # (n, pairs), 0 is never a key
    values = rng.random((n, vocab - half)).argsort(axis=1)[:, :pairs] + half
    context = 2 * pairs
    space = (seq_len - context) // 2  # query slots: even offsets after the pairs
    weights = power_a * np.arange(1, space + 1) ** (power_a - 1)
    gumbel = np.log(weights / weights.sum()) - np.log(-np.log(rng.random((n, space))))
    gaps = np.argsort(-gumbel, axis=1)[:, :pairs]  # (n, pairs): which slot queries which key
    x = np.zeros((n, seq_len), dtype=np.int64)
    x[:, 0:context:2], x[:, 1:context:2] = keys, values
    positions = context + 2 * gaps
    np.put_along_axis(x, positions, keys, axis=1)
    y = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    np.put_along_axis(y, positions, values, axis=1)
    noise = rng.integers(0, vocab, size=(n, seq_len))
    filler = np.ones((n, seq_len), dtype=bool)
    filler[:, :context] = False
    np.put_along_axis(filler, positions, False, axis=1)
    x[filler] = noise[filler]
    return x, y


@register_task("mqar")
def load_mqar(
    *,
    seed: int,
    vocab: int = 64,
    seq_len: int = 64,
    pairs: int = 8,
    power_a: float = 0.01,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 500,
) -> Task:
    """Per-token recall; each split drawn from its own stream of ``seed``. Defaults suit a CPU."""
    _check(vocab=vocab, seq_len=seq_len, pairs=pairs, power_a=power_a, sizes=(n_train, n_val, n_test))
    splits = []
    for stream, n in enumerate((n_train, n_val, n_test)):
        x, y = generate_mqar(n, vocab=vocab, seq_len=seq_len, pairs=pairs, power_a=power_a, rng=split_rng(seed, stream))
        splits.append(Split(torch.from_numpy(x), torch.from_numpy(y)))
    spec = InputSpec(seq_len=seq_len, num_outputs=vocab, vocab=vocab, per_token=True)
    return Task("mqar", *splits, input_spec=spec, metric="accuracy", classes=None, seed=seed,
                plateau_steps=RECALL_PLATEAU_STEPS)


def _check(*, vocab: int, seq_len: int, pairs: int, power_a: float, sizes: tuple[int, ...]) -> None:
    if pairs < 1 or min(sizes) < 1:
        raise TaskError(f"mqar: pairs={pairs} and n_train/n_val/n_test={sizes} must all be >= 1")
    if pairs > vocab // 2 - 1:
        raise TaskError(f"mqar: pairs={pairs} needs that many distinct keys in 1..vocab/2-1; vocab={vocab} has {vocab // 2 - 1}")
    if seq_len < 4 * pairs:
        raise TaskError(f"mqar: seq_len={seq_len} must be >= 4 * pairs = {4 * pairs} (pairs, then a query slot per key)")
    if not power_a > 0:  # also refuses nan
        raise TaskError(f"mqar: power_a={power_a} must be > 0")
