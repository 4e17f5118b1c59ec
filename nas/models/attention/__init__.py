"""The attention library: one family per module, each registered by name.

>>> from nas.models.attention import get_attention
>>> layer = get_attention("dot")(d_model=64, heads=4)
"""

from nas.models.attention.registry import attention_names, get_attention, register_attention
from nas.models.attention.base import Attention, SoftmaxAttention

# Importing a family registers it.
from nas.models.attention import additive, cosine, dot, general, linear, local  # noqa: E402,F401

__all__ = ["Attention", "SoftmaxAttention", "attention_names", "get_attention", "register_attention"]
