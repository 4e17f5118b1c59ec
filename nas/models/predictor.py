"""An exported model that takes data as the user holds it: raw series in, the task's own labels out.

``load_model`` returns the network, which expects what training gave it: z-scores
from the training split's statistics, padded to the task's length, class ids. The
export records that preprocessing; :class:`Predictor` applies it, so new data is
never silently fed on another scale.

>>> predictor = load_predictor("results/ucr_GunPoint-timeseries/best")
>>> predictor.predict(X_new)          # ['1', '2', ...]: the labels the data set used
>>> predictor.predict_proba(X_new)    # (n, classes), columns in predictor.classes order
>>> predictor.predict_frame(frame)    # a long-format table (sample, step, features by name): one label per sample
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nas.core.checks import SpecError
from nas.data.prepare import pad_series, real_positions
from nas.data.scaling import Scaling
from nas.data.spec import InputSpec
from nas.models.saved import METRICS_FILE, ExportError, load_model

BATCH = 256  # samples per forward pass: bounds memory on long inputs


class Predictor:
    """``model`` with its task's preprocessing: ``scaling`` (None: inputs were used as stored), ``classes``
    (the original labels in id order; None for regression) and ``features`` (the names of the features, in the
    model's order, where the data named them)."""

    def __init__(self, model: torch.nn.Module, input_spec: InputSpec, scaling: Scaling | None,
                 classes: Sequence[str | int] | None, device: str | torch.device = "cpu",
                 features: Sequence[str] | None = None):
        self.device = torch.device(device)
        self.model, self.input_spec, self.scaling = model.to(self.device).eval(), input_spec, scaling
        self.classes = None if classes is None else np.asarray(list(classes))
        self.features = None if features is None else tuple(features)
        if scaling is not None and len(scaling.mean) != input_spec.features:
            raise SpecError(f"scaling has {len(scaling.mean)} features, the model reads {input_spec.features}")
        if self.features is not None and len(self.features) != input_spec.features:
            raise SpecError(f"{len(self.features)} feature names for a model that reads {input_spec.features}")

    def predict_frame(self, frame: Any) -> Any:
        """Labels (or values) for a pandas table in the long format the model's CSV had: one row per step, columns
        ``sample``, ``step`` and the features by name (in any order; others, such as ``label``, are ignored).
        Returns a Series indexed by sample, in order of first appearance."""
        import pandas as pd

        samples, series = self.frame_series(frame)
        return pd.Series(list(self.predict(series)), index=pd.Index(samples, name="sample"), name="prediction")

    def frame_series(self, frame: Any) -> tuple[list[Any], list[np.ndarray]]:
        """The samples of a long-format table, in order of first appearance, and each one's series of the model's
        features, read by name and ordered by step."""
        if self.features is None:
            raise ValueError("this model was trained on arrays, whose features have no names; use predict(X)")
        needed = ["sample", "step", *self.features]
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise ValueError(f"frame has no column {missing[0]!r}; needed: {', '.join(needed)}")
        samples, series = [], []
        for sample, group in frame.groupby("sample", sort=False):
            group = group.sort_values("step", kind="stable")
            if not np.array_equal(group["step"].to_numpy(), np.arange(len(group))):
                raise ValueError(f"sample {sample!r} has steps {group['step'].tolist()[:8]}; steps must run 0, 1, ... "
                                 f"without gaps or repeats, as in training")
            samples.append(sample)
            series.append(group[list(self.features)].to_numpy())
        return samples, series

    @torch.no_grad()
    def outputs(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """The model's raw outputs (logits, or regression values) for ``x``."""
        inputs, mask = self._inputs(x)
        parts = []
        for start in range(0, len(inputs), BATCH):
            chunk = slice(start, start + BATCH)
            parts.append(self.model(inputs[chunk].to(self.device),
                                    None if mask is None else mask[chunk].to(self.device)).float().cpu())
        return torch.cat(parts).numpy()

    def predict_proba(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, columns in :attr:`classes` order."""
        return self.probabilities(self.outputs(x))

    def predict(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Labels as the training data named them (per position for a per-token task), or regression values."""
        return self.decode(self.outputs(x))

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """:meth:`outputs` as class probabilities (for callers that want labels too, from one forward pass)."""
        if self.input_spec.target != "classification":
            raise ValueError("class probabilities need a classification model; this one predicts regression values")
        return torch.softmax(torch.from_numpy(outputs), dim=-1).numpy()

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """:meth:`outputs` as labels, or regression values."""
        if self.input_spec.target != "classification":
            return outputs[..., 0] if outputs.shape[-1] == 1 else outputs
        ids = outputs.argmax(-1)
        return ids if self.classes is None else self.classes[ids]

    def _inputs(self, x: np.ndarray | Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tensors shaped and scaled as in training: padded to the task's length, masked where padded."""
        spec = self.input_spec
        series = [np.asarray(s) for s in x]
        if not series:
            raise ValueError("x holds no samples")
        if spec.kind == "continuous":
            series = [s[:, None] if s.ndim == 1 and spec.features == 1 else s for s in series]
            for i, s in enumerate(series):
                if s.ndim != 2 or s.shape[1] != spec.features:
                    flipped = s.ndim == 2 and s.shape[0] == spec.features
                    raise ValueError(f"sample {i} has shape {s.shape}; the model reads (steps, {spec.features}) "
                                     f"series{' or (steps,)' if spec.features == 1 else ''}"
                                     + ("; transpose it (aeon and sktime hold series as (channels, steps))"
                                        if flipped else ""))
        elif any(s.ndim != 1 for s in series):
            raise ValueError(f"token inputs must be (steps,) id sequences; got shapes {sorted({s.shape for s in series})}")
        if spec.kind == "continuous":
            series = [_finite(s, i) for i, s in enumerate(series)]
        lengths = np.array([len(s) for s in series])
        if lengths.max() > spec.seq_len or lengths.min() < 1:
            bad = int(np.flatnonzero((lengths > spec.seq_len) | (lengths < 1))[0])
            raise ValueError(f"sample {bad} has {lengths[bad]} steps; the model reads 1 to {spec.seq_len}")
        if spec.kind == "tokens":
            ids = np.zeros((len(series), spec.seq_len), dtype=np.int64)
            for i, s in enumerate(series):
                ids[i, :len(s)] = s
            inputs = torch.from_numpy(ids)
        else:
            padded, _ = pad_series(series)
            padded = np.pad(padded, ((0, 0), (0, spec.seq_len - padded.shape[1]), (0, 0)))
            real = real_positions(lengths, spec.seq_len)
            if self.scaling is not None:
                padded = self.scaling.apply(padded, real)
            inputs = torch.from_numpy(padded.astype(np.float32))
        full = bool((lengths == spec.seq_len).all())
        return inputs, None if full else torch.from_numpy(real_positions(lengths, spec.seq_len))


def _finite(series: np.ndarray, index: int) -> np.ndarray:
    """``series`` as float64, refusing what training never saw: text, None, NaN or infinity."""
    values = series.ravel()
    for value in values if not np.issubdtype(series.dtype, np.number) else values[~np.isfinite(values)][:1]:
        try:
            ok = np.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            shown = value.item() if isinstance(value, np.generic) else value
            raise ValueError(f"sample {index} holds {shown!r}; features must be finite numbers, as in training")
    return series.astype(np.float64)


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The exported model at ``path`` with the preprocessing its export recorded, run on ``device``."""
    folder = Path(path)
    model = load_model(folder)
    info: dict[str, Any] = json.loads((folder / METRICS_FILE).read_text())
    if "preprocessing" not in info:
        raise ExportError(f"{folder / METRICS_FILE} records no preprocessing (exported by an earlier version); "
                          f"export the trial again, or use load_model and standardise inputs yourself")
    pre = info["preprocessing"]
    try:
        scaling = None if pre.get("scaling") is None else Scaling.from_dict(pre["scaling"])
        return Predictor(model, InputSpec.from_dict(info["input"]), scaling, pre.get("classes"), device,
                         pre.get("features"))
    except (SpecError, AttributeError) as err:
        raise ExportError(f"{folder / METRICS_FILE}: its preprocessing entry cannot be used: {err}") from None


__all__ = ["Predictor", "load_predictor"]
