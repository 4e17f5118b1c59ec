"""Small assertions several task test modules share."""

from __future__ import annotations

import torch

from nas.data import Task


def assert_same_tensors(a: Task, b: Task) -> None:
    """Bit equality of every tensor of every split (None where the other is None too)."""
    for name, split in a.splits().items():
        other = b.splits()[name]
        for field in ("x", "y", "mask", "lengths"):
            left, right = getattr(split, field), getattr(other, field)
            assert (left is None) == (right is None), f"{name}.{field}"
            if left is not None:
                assert left.dtype == right.dtype and torch.equal(left, right), f"{name}.{field} differs"


def assert_well_formed(task: Task) -> None:
    """The contract of a Split every consumer relies on: dtypes, contiguity, masks agree with lengths."""
    spec = task.input_spec
    for name, split in task.splits().items():
        assert len(split) > 0, name
        assert split.x.is_contiguous() and split.y.is_contiguous()
        assert split.x.shape[1] == spec.seq_len
        if spec.kind == "continuous":
            assert split.x.dtype == torch.float32 and split.x.shape[2] == spec.features
            assert torch.isfinite(split.x).all()
        else:
            assert split.x.dtype == torch.int64
            assert 0 <= int(split.x.min()) and int(split.x.max()) < spec.vocab
        if spec.target == "classification" and not spec.per_token:
            assert split.y.dtype == torch.int64 and split.y.shape == (len(split),)
            assert 0 <= int(split.y.min()) and int(split.y.max()) < spec.num_outputs
        if split.mask is not None:
            assert split.mask.dtype == torch.bool and split.lengths.dtype == torch.int64
            assert torch.equal(split.mask.sum(1), split.lengths)
            steps = torch.arange(spec.seq_len)[None, :]
            assert torch.equal(split.mask, steps < split.lengths[:, None]), "real steps must come first"
