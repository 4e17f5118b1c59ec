"""attention-nas: search for the mix of attention mechanisms that fits your data."""

from nas.model import CompositeModel, build_model
from nas.spec import ArchSpec, AttentionSpec, BlockSpec, InputSpec, MixerSpec, SpecError

__all__ = [
    "ArchSpec",
    "AttentionSpec",
    "BlockSpec",
    "CompositeModel",
    "InputSpec",
    "MixerSpec",
    "SpecError",
    "build_model",
]
