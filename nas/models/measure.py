"""What a model costs: parameters, FLOPs and latency on a device."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

COSTS = {"params": "params", "flops": "flops", "latency": "latency_ms"}
"""The costs a search may minimise beside its metric, by objective name, and the trial attribute each is stored as."""

_aten = torch.ops.aten
# PyTorch counts SDPA only for its CUDA kernels; on CPU the fused kernel is a
# separate op that would otherwise count as zero, hiding attention's T^2 cost.
def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


CPU_SDPA_FLOPS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Forward FLOPs of one call on ``inputs``, counted by ``torch.utils.flop_counter``.

    The counter sees matrix products and SDPA (2 FLOPs per multiply-add); it
    ignores element-wise work such as the tanh of additive attention, so
    compare FLOPs between models rather than reading them as wall time.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def synchronize(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(fn, device: torch.device | str, repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup``, device work included."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_latency(
    model: nn.Module, *inputs: torch.Tensor, repeats: int = 10, warmup: int = 2
) -> float:
    """Median seconds of one inference forward on the device the inputs live on."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return time_call(lambda: model(*inputs), inputs[0].device, repeats, warmup)
    finally:
        model.train(was_training)
