"""Attention maps of a model on a few samples: what each attention module of one block looks at.

Computed apart from the drawing (:func:`nas.results.report.plots.plot_attention`):

>>> maps = attention_maps(load_model("results/digits-default/best"), x[:3], mask=None)
>>> maps.weights[0].shape   # (samples, heads, T, T) of the block's first module
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nas.models.model import CompositeModel


@dataclass(frozen=True)
class AttentionMaps:
    """Per attention module of the block: its label and its weights (samples, heads, T, T), CPU float32.

    ``lengths`` holds each sample's real (unpadded) token count, so plots can crop the padding.
    """

    block: int
    labels: list[str]
    weights: list[Tensor]
    lengths: list[int]


def _labels(model: CompositeModel, block: int, count: int) -> list[str]:
    mixer = model.spec.blocks[block].mixer
    names = [b.summary() for b in mixer.branches]
    if mixer.topology == "fused":
        return [f"fused[{' + '.join(names)}]"]
    return names if len(names) == count else [f"module {i + 1}" for i in range(count)]


@torch.no_grad()
def attention_maps(model: CompositeModel, x: Tensor, mask: Tensor | None = None, block: int = 0) -> AttentionMaps:
    """Run ``model`` on ``x`` and collect ``attention_weights`` of every attention module in block ``block``.

    Each module sees exactly the input it gets in the forward pass (after the
    embedding, the earlier blocks and its own pre-norm), caught by a forward pre-hook.
    """
    if not 0 <= block < len(model.blocks):
        raise ValueError(f"block={block} does not exist; the model has blocks 0..{len(model.blocks) - 1}")
    modules = model.blocks[block].attention_modules()
    inputs: dict[int, tuple[Tensor, Tensor | None]] = {}

    def catcher(index: int):
        def hook(module, args):
            inputs[index] = (args[0], args[1] if len(args) > 1 else None)
        return hook

    handles = [m.register_forward_pre_hook(catcher(i)) for i, m in enumerate(modules)]
    was_training = model.training
    model.eval()
    try:
        model(x, mask)
        weights = [modules[i].attention_weights(*inputs[i]).float().cpu() for i in range(len(modules))]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    token_mask = inputs[0][1] if modules else None
    tokens = weights[0].shape[-1] if weights else 0
    lengths = [tokens] * x.shape[0] if token_mask is None else token_mask.sum(-1).tolist()
    return AttentionMaps(block, _labels(model, block, len(modules)), weights, [int(n) for n in lengths])


__all__ = ["AttentionMaps", "attention_maps"]
