"""An exported model folder read back: ``load_model`` needs torch and safetensors only.

An export holds ``arch.json`` (the ArchSpec), ``model.safetensors`` (weights),
``metrics.json`` (metrics, provenance and the InputSpec) and ``MODEL.md``; the
first three rebuild the model. Where ``metrics.json`` records ``members`` > 1,
the weights are that many seeds' (``members.<i>.``), rebuilt as a
:class:`SeedEnsemble`. Writing an export is the results layer's job.

>>> model = load_model("results/digits-default/best")
>>> logits = model(x, mask)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from nas.core.checks import SpecError
from nas.data.spec import InputSpec
from nas.models.ensemble import SeedEnsemble
from nas.models.model import CompositeModel, build_model
from nas.models.spec import ArchSpec
from nas.models.weights import load_weights

ARCH_FILE, WEIGHTS_FILE, METRICS_FILE, CARD_FILE = "arch.json", "model.safetensors", "metrics.json", "MODEL.md"
EXPORT_FILES = (ARCH_FILE, WEIGHTS_FILE, METRICS_FILE, CARD_FILE)
LOAD_FILES = (ARCH_FILE, WEIGHTS_FILE, METRICS_FILE)


class ExportError(ValueError):
    """An export that cannot be written or loaded as asked; the message names the file, trial or tensor."""


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)``, first naming any tensor that is missing, extra or misshapen."""
    own = model.state_dict()
    for name, tensor in own.items():  # in the model's order, so the first problem named is the earliest layer's
        if name not in state:
            raise ExportError(f"{source} does not fit the architecture: tensor {name!r} is missing")
        if state[name].shape != tensor.shape:
            raise ExportError(f"{source} does not fit the architecture: tensor {name!r} has shape "
                              f"{tuple(state[name].shape)}, the architecture needs {tuple(tensor.shape)}")
    extra = [name for name in state if name not in own]
    if extra:
        raise ExportError(f"{source} does not fit the architecture: unexpected tensor {extra[0]!r}"
                          + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    model.load_state_dict(state, strict=True)


def load_model(path: str | Path) -> CompositeModel | SeedEnsemble:
    """The exported model with its weights, on the CPU and in ``eval()`` mode: one network, or the ensemble of the
    final seeds (same call, same outputs' meaning).

    >>> model = load_model("results/digits-default/best")
    >>> logits = model(x, mask)   # x (B, T, features) or (B, T) token ids; mask (B, T) bool or None
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is not an export folder (it does not exist)")
    missing = [name for name in LOAD_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"{folder} is missing {', '.join(missing)}; an export holds {', '.join(EXPORT_FILES)}")
    try:
        spec = ArchSpec.from_json((folder / ARCH_FILE).read_text())
        info = json.loads((folder / METRICS_FILE).read_text())
        input_spec = InputSpec.from_dict(info["input"])
        members = info.get("members", 1)
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise SpecError(f"members={members!r} must be an integer >= 1")
    except (SpecError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ExportError(f"{folder}: cannot rebuild the architecture from {ARCH_FILE} and {METRICS_FILE}: "
                          f"{err}") from None
    model: CompositeModel | SeedEnsemble = build_model(spec, input_spec)
    if members > 1:
        model = SeedEnsemble([model, *(build_model(spec, input_spec) for _ in range(members - 1))])
    try:
        state = load_weights(folder / WEIGHTS_FILE)
    except ValueError as err:
        raise ExportError(str(err)) from None
    load_checked(model, state, str(folder / WEIGHTS_FILE))
    return model.eval()


__all__ = ["ARCH_FILE", "CARD_FILE", "EXPORT_FILES", "ExportError", "METRICS_FILE", "WEIGHTS_FILE", "load_checked",
           "load_model"]
