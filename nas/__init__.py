"""attention-nas: search for the mix of attention mechanisms that fits your data."""

from nas.data.spec import InputSpec
from nas.models import (ArchSpec, AttentionSpec, BlockSpec, CompositeModel, EmbeddingSpec, MixerSpec, SeedEnsemble,
                        SpecError, build_model)
from nas.models.predictor import Predictor, load_predictor
from nas.models.saved import load_model

__all__ = [
    "ArchSpec",
    "AttentionSpec",
    "BlockSpec",
    "CompositeModel",
    "EmbeddingSpec",
    "InputSpec",
    "MixerSpec",
    "Predictor",
    "SeedEnsemble",
    "SpecError",
    "build_model",
    "load_model",
    "load_predictor",
]
