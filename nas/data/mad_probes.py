"""The six MAD probes (Poli et al., 2024) as seeded numpy generators, laid out for models that see both ways.

MAD (github.com/athms/mad-lab, ``mad/data/instances.py``) writes its probes for
causal language models: targets are the inputs shifted by one, so the answer to
a query is the next input token. The models of this toolkit attend in both
directions and would read such an answer off the input, so here a target sits
where the input does not hold its answer: a recalled value is replaced by the
query marker (the last id, MAD's copy prefix), copied tokens are asked for at the
blanks after the copy token, a memorised value at the insert token. A causal
model gets exactly the information MAD gives it.

Compression is the exception: as in MAD, the target is the input itself. MAD
scores it with an autoencoder that must decode every position from the final
(compression) token's state; a model that predicts each position from its own
token solves it outright, so the task asks models for that bottleneck
(``InputSpec.bottleneck``).
"""

from __future__ import annotations

import numpy as np

from nas.data.base import IGNORE_INDEX

Arrays = tuple[np.ndarray, np.ndarray]


def _first_seen(ids: np.ndarray) -> np.ndarray:
    """Bool like ``ids`` (n, m): True where the id has not occurred earlier in its row."""
    order = np.argsort(ids, axis=1, kind="stable")  # stable: the earliest of equal ids sorts first
    ranked = np.take_along_axis(ids, order, axis=1)
    first = np.ones(ids.shape, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    out = np.empty_like(first)
    np.put_along_axis(out, order, first, axis=1)
    return out


def in_context_recall(
    n: int, rng: np.random.Generator, *, vocab: int, seq_len: int,
    noise_vocab: int = 0, frac_noise: float = 0.0, training: bool = False,
) -> Arrays:
    """Key-value pairs, each later pair of a key seen before a query ``k ?`` labelled with its value at ``?``.

    Ids: keys, values, ``noise_vocab`` noise ids, the marker ``vocab - 1``. Each
    of the first ``seq_len/2 - 1`` pair slots is noise (two noise tokens) with
    probability ``frac_noise``, one random slot never; the last slot queries a key
    shown before. Values are fixed per key within a sequence. ``training`` changes nothing.
    """
    keys_n = (vocab - 1 - noise_vocab) // 2
    values_n = vocab - 1 - noise_vocab - keys_n
    slots = seq_len // 2
    keys = rng.integers(0, keys_n, size=(n, slots))
    table = rng.integers(keys_n, keys_n + values_n, size=(n, keys_n))  # each key's value in each row
    noise = np.zeros((n, slots), dtype=bool)
    if frac_noise > 0:
        noise[:, :-1] = rng.random((n, slots - 1)) < frac_noise
        noise[np.arange(n), rng.integers(0, slots - 1, size=n)] = False  # at least one pair to recall
    shown = np.zeros((n, keys_n), dtype=bool)
    body = ~noise[:, :-1]
    shown[np.nonzero(body)[0], keys[:, :-1][body]] = True
    keys[:, -1] = np.where(shown, rng.random((n, keys_n)), -1.0).argmax(axis=1)  # a shown key, uniformly
    query = ~_first_seen(np.where(noise, keys_n, keys)) & ~noise
    values = np.take_along_axis(table, keys, axis=1)
    x = np.stack([keys, np.where(query, vocab - 1, values)], axis=2)
    if frac_noise > 0:
        low = vocab - 1 - noise_vocab
        x[noise] = rng.integers(low, low + noise_vocab, size=(int(noise.sum()), 2))
    y = np.full((n, slots, 2), IGNORE_INDEX, dtype=np.int64)
    y[:, :, 1] = np.where(query, values, IGNORE_INDEX)
    return x.reshape(n, -1).astype(np.int64), y.reshape(n, -1)


def fuzzy_recall(
    n: int, rng: np.random.Generator, *, vocab: int, seq_len: int, key_len: int, value_len: int,
    training: bool = False,
) -> Arrays:
    """In-context recall over keys of 1..``key_len`` and values of 1..``value_len`` distinct tokens.

    Ids: keys, values, padding ``vocab - 2``, the marker ``vocab - 1``. A query
    ``k1 k2 ? ?`` is labelled with the value's tokens at its markers. One probe
    pair stands at a random point and the sequence ends by querying it; sequences
    are padded at the front. Training keys have any length, other keys ``key_len``
    tokens (MAD always prompts at the longest key).
    """
    keys_n = (vocab - 2) // 2
    values_n = vocab - 2 - keys_n
    x = np.full((n, seq_len), vocab - 2, dtype=np.int64)
    y = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    most = seq_len // 2  # a pair has at least two tokens
    for row in range(n):
        key_sizes = (rng.integers(1, key_len + 1, size=most + 1) if training else np.full(most + 1, key_len)).tolist()
        value_sizes = rng.integers(1, value_len + 1, size=most + 1).tolist()
        key_draws = rng.random((most + 1, keys_n)).argsort(axis=1)[:, :key_len].tolist()
        value_draws = (rng.random((most + 1, values_n)).argsort(axis=1)[:, :value_len] + keys_n).tolist()
        probe = tuple(key_draws[most][: key_sizes[most]]), tuple(value_draws[most][: value_sizes[most]])
        table = {probe[0]: probe[1]}
        pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        used, reserved = 0, len(probe[0]) + len(probe[1])
        limit = seq_len - reserved - (key_len + value_len)  # as MAD: room for the closing query
        for i in range(most):
            if used + reserved >= limit:
                break
            key = tuple(key_draws[i][: key_sizes[i]])
            value = table.setdefault(key, tuple(value_draws[i][: value_sizes[i]]))
            if key == probe[0]:
                reserved = 0
            pairs.append((key, value))
            used += len(key) + len(value)
        if reserved:
            pairs.insert(int(rng.integers(0, len(pairs) + 1)), probe)
        pairs.append(probe)
        tokens: list[int] = []
        labels: list[int] = []
        seen: set[tuple[int, ...]] = set()
        for key, value in pairs:
            tokens += key
            labels += [IGNORE_INDEX] * len(key)
            tokens += [vocab - 1] * len(value) if key in seen else value
            labels += value if key in seen else [IGNORE_INDEX] * len(value)
            seen.add(key)
        x[row, seq_len - len(tokens):] = tokens
        y[row, seq_len - len(labels):] = labels
    return x, y


def selective_copy(n: int, rng: np.random.Generator, *, vocab: int, seq_len: int, to_copy: int, training: bool = False) -> Arrays:
    """``to_copy`` tokens scattered among blanks (``vocab - 2``), the copy token (``vocab - 1``), then
    ``to_copy`` blanks labelled with the tokens in order. As MAD, blanks fall before each token with equal
    chance, so the last token always stands just before the copy token. ``training`` changes nothing."""
    blanks = seq_len - 2 * to_copy - 1
    tokens = rng.integers(0, vocab - 2, size=(n, to_copy))
    before = rng.multinomial(blanks, np.full(to_copy, 1 / to_copy), size=n)  # blanks ahead of each token
    x = np.full((n, seq_len), vocab - 2, dtype=np.int64)
    np.put_along_axis(x, np.arange(to_copy) + before.cumsum(axis=1), tokens, axis=1)
    x[:, seq_len - to_copy - 1] = vocab - 1
    y = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    y[:, seq_len - to_copy:] = tokens
    return x, y


def compression(n: int, rng: np.random.Generator, *, vocab: int, seq_len: int, training: bool = False) -> Arrays:
    """``seq_len - 1`` random tokens and the compression token (``vocab - 1``); the target is the whole
    input, compression token included, as MAD's. ``training`` changes nothing."""
    x = rng.integers(0, vocab - 1, size=(n, seq_len))
    x[:, -1] = vocab - 1
    return x, x.copy()


def memorization_table(vocab: int, rng: np.random.Generator) -> np.ndarray:
    """The fixed dictionary: ``table[k]`` is key ``k``'s value, keys ``0 .. (vocab-1)//2 - 1`` mapped
    one-to-one onto random values from the upper half (below the insert token ``vocab - 1``)."""
    keys_n = (vocab - 1) // 2
    return keys_n + rng.permutation(vocab - 1 - keys_n)[:keys_n]


def memorization(n: int, rng: np.random.Generator, *, vocab: int, seq_len: int, table: np.ndarray, training: bool = False) -> Arrays:
    """``seq_len/2`` pairs ``key insert``, each insert token labelled with the key's value in ``table``
    (the same for every split: the facts to memorise). ``training`` changes nothing."""
    keys = rng.integers(0, len(table), size=(n, seq_len // 2))
    x = np.full((n, seq_len), vocab - 1, dtype=np.int64)
    y = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    x[:, 0::2] = keys
    y[:, 1::2] = table[keys]
    return x, y
