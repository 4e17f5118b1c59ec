"""One architecture trained with several seeds, answering as one model: the mean of its members' predictions.

The final model trains its winner once per seed anyway; on small data one seed's
test accuracy is a noisy draw (a few series decide it), and averaging the
seeds' class probabilities (a deep ensemble; InceptionTime's published figures
are of an ensemble of five) removes much of that noise at no extra training.

>>> ensemble = SeedEnsemble([model_a, model_b, model_c])
>>> ensemble(x, mask).softmax(-1)    # the members' mean class probabilities
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


class SeedEnsemble(nn.Module):
    """``members`` (each ``forward(x, mask)``, all for one task) averaged: for classification it returns the log of
    the mean class probabilities, so that ``softmax`` and ``argmax`` read it as logits; for regression, the mean
    value. ``classification`` defaults to the first member's ``input_spec.target``."""

    def __init__(self, members: Sequence[nn.Module], classification: bool | None = None):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        if classification is None:
            classification = getattr(members[0], "input_spec").target == "classification"
        self.classification = classification

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        outputs = torch.stack([member(x, mask) for member in self.members])
        if not self.classification:
            return outputs.mean(0)
        return torch.logsumexp(torch.log_softmax(outputs.float(), dim=-1), dim=0) - math.log(len(self.members))


def first_member(model: nn.Module) -> nn.Module:
    """The model itself, or an ensemble's first member: for what needs one network's insides (attention maps)."""
    return model.members[0] if isinstance(model, SeedEnsemble) else model


__all__ = ["SeedEnsemble", "first_member"]
