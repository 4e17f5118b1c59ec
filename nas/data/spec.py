"""What a task's data looks like to a model: the one piece of the data layer that the model library reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nas.core.checks import SpecError, build_dataclass, check_choice, check_int

TARGETS = ("classification", "regression")


@dataclass(frozen=True)
class InputSpec:
    """What the data looks like, as far as building a model needs to know.

    ``features`` is the size of a continuous step, ``vocab`` the number of token
    ids (exactly one of them is non-zero). ``per_token`` asks for one prediction
    per position (sequence labelling, e.g. associative recall) instead of a pooled one.
    ``bottleneck`` (per-token only) makes every position's prediction come from
    the last position's state alone: a task that asks for its own input back
    (MAD's compression) is trivial without it.
    """

    seq_len: int
    num_outputs: int
    features: int = 0
    vocab: int = 0
    target: str = "classification"
    per_token: bool = False
    bottleneck: bool = False

    def __post_init__(self) -> None:
        check_int("seq_len", self.seq_len, 1)
        check_int("num_outputs", self.num_outputs, 1)
        check_int("features", self.features, 0)
        check_int("vocab", self.vocab, 0)
        check_choice("target", self.target, TARGETS)
        if (self.features > 0) == (self.vocab > 0):
            raise SpecError(
                f"exactly one of features={self.features} and vocab={self.vocab} must be > 0"
            )
        if self.bottleneck and not self.per_token:
            raise SpecError("bottleneck=True needs per_token=True: it decodes every position from the last one")

    @property
    def kind(self) -> str:
        return "tokens" if self.vocab else "continuous"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InputSpec":
        return build_dataclass(cls, data, "input")


__all__ = ["TARGETS", "InputSpec"]
