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
    "load_model",
]


def __getattr__(name: str):
    # load_model pulls in the search and storage stack; import it only when asked for.
    if name == "load_model":
        from nas.export import load_model

        return load_model
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
