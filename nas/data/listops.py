"""``listops``: nested list operations as in Long Range Arena (Tay et al., 2021), e.g. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` -> 9.

Operators MIN, MAX, MED (median, rounded down) and SM (sum modulo 10) over the
digits 0-9; the label is the expression's value. Trees grow by LRA's rule (a
node below ``max_depth`` is an operator with probability 0.25, with 2 to
``max_args`` arguments) and are kept when their token count lies in
``[min_len, max_len]``; expressions are distinct across all three splits.
Long sets take minutes to draw in Python, so each set is cached on disk, keyed
by every parameter and the seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Sequence

import torch

from nas.data.spec import InputSpec
from nas.data.base import Split, Task, TaskError
from nas.data.registry import register_task
from nas.core.files import write_atomically

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
DIGITS = tuple(str(d) for d in range(10))
VOCAB = ("<pad>", *DIGITS, *OPERATORS, CLOSE)
"""Token ids are positions in this tuple; 0 is padding."""
TOKEN_ID = {token: i for i, token in enumerate(VOCAB)}
OPERATOR_P = 0.25  # LRA's VALUE_P: below max_depth a node is an operator with this probability
CACHE_VERSION = 1  # bump when the generator changes, so old caches are not reused


def apply(op: str, args: Sequence[int]) -> int:
    """One operator on its evaluated arguments; MED of an even count takes the lower mean, as LRA's ``int(np.median)``."""
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[SM":
        return sum(args) % 10
    ordered = sorted(args)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2


def evaluate(expression: str | Sequence[str]) -> int:
    """The value of a ListOps expression, given as text or tokens.

    >>> evaluate("[SM 5 6 [MED 1 2 3 ] ]")
    3
    """
    tokens = expression.split() if isinstance(expression, str) else list(expression)
    stack: list[tuple[str, list[int]]] = [("", [])]  # sentinel frame collects the top-level value
    for i, token in enumerate(tokens):
        if token in OPERATORS:
            stack.append((token, []))
        elif token in DIGITS:
            stack[-1][1].append(int(token))
        elif token == CLOSE and len(stack) > 1 and stack[-1][1]:
            op, args = stack.pop()
            stack[-1][1].append(apply(op, args))
        else:
            raise TaskError(f"listops: token {i} {token!r} is out of place in {' '.join(tokens)!r}")
    if len(stack) != 1 or len(stack[0][1]) != 1:
        raise TaskError(f"listops: {' '.join(tokens)!r} is not one complete expression")
    return stack[0][1][0]


def generate_expression(rng: random.Random, max_depth: int, max_args: int, limit: int) -> list[str] | None:
    """Tokens of one LRA tree, or None once it grows past ``limit`` tokens (it would be rejected anyway)."""
    out: list[str] = []

    def grow(depth: int) -> bool:
        if len(out) >= limit:
            return False
        if depth >= max_depth or rng.random() > OPERATOR_P:
            out.append(rng.choice(DIGITS))
            return True
        count = rng.randint(2, max_args)
        out.append(rng.choice(OPERATORS))
        if not all(grow(depth + 1) for _ in range(count)):
            return False
        out.append(CLOSE)
        return True

    return out if grow(1) and len(out) <= limit else None


@register_task("listops")
def load_listops(
    *,
    seed: int,
    cache_dir: Path,
    min_len: int = 16,
    max_len: int = 64,
    max_depth: int = 6,
    max_args: int = 5,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 500,
) -> Task:
    """Token ids (pad 0) padded to ``max_len`` with a mask; LRA itself keeps 500 < length < 2000, depth 10, 10 args."""
    params = dict(min_len=min_len, max_len=max_len, max_depth=max_depth, max_args=max_args,
                  n_train=n_train, n_val=n_val, n_test=n_test, seed=seed)
    _check(params)
    path = cache_path(cache_dir, params)
    data = _read_cache(path)
    if data is None:
        data = _generate(params)
        _write_cache(path, data)
    splits = [_to_split(data, name, max_len) for name in ("train", "val", "test")]
    spec = InputSpec(seq_len=max_len, num_outputs=10, vocab=len(VOCAB))
    return Task("listops", *splits, input_spec=spec, metric="accuracy", classes=DIGITS, seed=seed)


def cache_path(cache_dir: Path, params: dict[str, int]) -> Path:
    """``<cache_dir>/listops-<hash>.pt``, the hash over every parameter and the generator version."""
    key = json.dumps({**params, "version": CACHE_VERSION}, sort_keys=True)
    return Path(cache_dir) / f"listops-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _generate(params: dict[str, int]) -> dict[str, torch.Tensor]:
    rng = random.Random(params["seed"])
    wanted = params["n_train"] + params["n_val"] + params["n_test"]
    seen: dict[bytes, int] = {}  # token ids -> label, insertion-ordered: the first n_train are train, ...
    tries, budget = 0, 500 * wanted + 10_000
    while len(seen) < wanted:
        tries += 1
        if tries > budget:
            raise TaskError(
                f"listops: found only {len(seen)} of {wanted} distinct expressions with {params['min_len']} to "
                f"{params['max_len']} tokens (max_depth={params['max_depth']}, max_args={params['max_args']}) in "
                f"{budget} tries; widen the length range or raise max_depth / max_args"
            )
        tokens = generate_expression(rng, params["max_depth"], params["max_args"], params["max_len"])
        if tokens is not None and len(tokens) >= params["min_len"]:
            seen.setdefault(bytes(TOKEN_ID[t] for t in tokens), evaluate(tokens))
    items = list(seen.items())
    data: dict[str, torch.Tensor] = {}
    start = 0
    for name in ("train", "val", "test"):
        part = items[start : start + params[f"n_{name}"]]
        start += len(part)
        # Flat uint8 ids keep an LRA-size set (100k x 2,000 tokens) small in memory and on disk.
        data[f"{name}_tokens"] = torch.frombuffer(bytearray(b"".join(ids for ids, _ in part)), dtype=torch.uint8)
        data[f"{name}_lengths"] = torch.tensor([len(ids) for ids, _ in part], dtype=torch.int64)
        data[f"{name}_y"] = torch.tensor([label for _, label in part], dtype=torch.int64)
    return data


def _to_split(data: dict[str, torch.Tensor], name: str, width: int) -> Split:
    lengths = data[f"{name}_lengths"]
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (n, width)
    x = torch.zeros(mask.shape, dtype=torch.int64)
    x[mask] = data[f"{name}_tokens"].to(torch.int64)  # row-major fill matches the flat order
    return Split(x, data[f"{name}_y"].clone(), mask, lengths.clone())


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when absent or unreadable (then the set is drawn again)."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # a truncated or foreign file is not the user's error: regenerate it
        return None
    names = {f"{s}_{k}" for s in ("train", "val", "test") for k in ("tokens", "lengths", "y")}
    if not isinstance(data, dict) or set(data) != names:
        return None
    return data


def _write_cache(path: Path, data: dict[str, torch.Tensor]) -> None:
    write_atomically(path, lambda tmp: torch.save(data, tmp))


def _check(params: dict[str, int]) -> None:
    low = {"min_len": 1, "max_depth": 1, "max_args": 2, "n_train": 1, "n_val": 1, "n_test": 1, "seed": 0}
    for key, minimum in low.items():
        if params[key] < minimum:
            raise TaskError(f"listops: {key}={params[key]} must be >= {minimum}")
    if params["max_len"] < params["min_len"]:
        raise TaskError(f"listops: max_len={params['max_len']} must be >= min_len={params['min_len']}")
    longest = 1  # the largest tree: operators with max_args arguments down to max_depth
    for _ in range(params["max_depth"] - 1):
        longest = 2 + params["max_args"] * longest
        if longest >= params["min_len"]:
            break
    if longest < params["min_len"]:
        raise TaskError(
            f"listops: min_len={params['min_len']} is out of reach; max_depth={params['max_depth']} and "
            f"max_args={params['max_args']} allow at most {longest} tokens"
        )
