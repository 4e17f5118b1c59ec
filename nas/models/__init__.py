"""The model library: architectures as plain data, and the one factory that builds them.

It knows nothing of Optuna, training or files of a search: ``build_model(spec, input_spec)``.

>>> from nas.models import ArchSpec, build_model
"""

from nas.core.checks import SpecError
from nas.models.ensemble import SeedEnsemble
from nas.models.model import CompositeModel, build_model
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, EmbeddingSpec, MixerSpec

__all__ = ["ArchSpec", "AttentionSpec", "BlockSpec", "CompositeModel", "EmbeddingSpec", "MixerSpec", "SeedEnsemble",
           "SpecError", "build_model"]
