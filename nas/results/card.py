"""The model card of an export (``MODEL.md``): the composite drawn as text, its metrics, how to load it.

>>> print(draw_arch(spec, InputSpec(seq_len=8, features=8, num_outputs=10)))
input: 8 steps x 8 features
  |
embedding: linear 8 -> 16, + sinusoidal position
...
"""

from __future__ import annotations

from typing import Any

from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, BlockSpec, MixerSpec

READOUTS = {"mean": "mean pooling", "first": "first token", "attention": "learned-query attention pooling"}


def draw_arch(spec: ArchSpec, input_spec: InputSpec) -> str:
    """The composite as a top-to-bottom text diagram; identical consecutive blocks are drawn once."""
    d = spec.d_model
    if input_spec.kind == "tokens":
        lines = [f"input: {input_spec.seq_len} tokens (vocabulary {input_spec.vocab})", "  |",
                 f"embedding: token table {input_spec.vocab} x {d}"]
    else:
        patch = f" (patches of {spec.patch} steps)" if spec.patch > 1 else ""
        lines = [f"input: {input_spec.seq_len} steps x {input_spec.features} features", "  |",
                 f"embedding: linear {spec.patch * input_spec.features} -> {d}{patch}"]
    lines[-1] += f", + {spec.position} position" if spec.position != "none" else ", no position"
    start = 0
    for count, block in _groups(spec.blocks):
        span = f"block {start + 1}" if count == 1 else f"blocks {start + 1}-{start + count} (x{count}, same shape)"
        lines += ["  |", *_draw_block(span, block, d)]
        start += count
    n = input_spec.num_outputs
    outputs = f"{n} classes" if input_spec.target == "classification" else f"{n} output{'s' if n > 1 else ''}"
    readout = "per token" if input_spec.per_token else f"readout: {READOUTS[spec.readout]}"
    lines += ["  |", f"norm -> {readout} -> head: linear {d} -> {outputs}"]
    return "\n".join(lines)


def _groups(blocks: tuple[BlockSpec, ...]) -> list[tuple[int, BlockSpec]]:
    groups: list[tuple[int, BlockSpec]] = []
    for block in blocks:
        if groups and groups[-1][1] == block:
            groups[-1] = (groups[-1][0] + 1, block)
        else:
            groups.append((1, block))
    return groups


def _draw_block(span: str, block: BlockSpec, d: int) -> list[str]:
    mixer: MixerSpec = block.mixer
    names = [b.summary() for b in mixer.branches]
    if mixer.topology == "single":
        body = [f"{span}: {names[0]} attention (pre-norm, residual)"]
    elif mixer.topology == "parallel":
        merge = {"sum": "summed", "concat": "concatenated, projected", "gate": "per-token gate"}[mixer.merge or "sum"]
        body = [f"{span}: parallel, same input to each branch, merged: {merge} (pre-norm, residual)"]
        body += [f"  {'`' if i == len(names) - 1 else '+'}-- {n}" for i, n in enumerate(names)]
    elif mixer.topology == "serial":
        body = [f"{span}: serial, each with its own pre-norm and residual"]
        body += [f"  {i + 1}. {n}" for i, n in enumerate(names)]
    else:
        body = [f"{span}: fused scores, one softmax(sum_i w_i * score_i) per head over one set of values"]
        body += [f"  {'`' if i == len(names) - 1 else '+'}-- score: {n}" for i, n in enumerate(names)]
    hidden = block.ff_mult * d
    return body + [f"  feed-forward: {d} -> {hidden} -> {d} ({block.activation}, pre-norm, residual)"]


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def model_card(spec: ArchSpec, input_spec: InputSpec, metrics: dict[str, Any]) -> str:
    """``MODEL.md`` for an export whose ``metrics.json`` holds ``metrics``."""
    metric = metrics["metric"]
    retrained = metrics.get("val") is None
    final = metrics.get("final")
    members = metrics.get("members", 1)  # older exports hold one network and no such entry
    test = _num(metrics.get("test"))
    if final:
        n = len(final["seeds"])
        test = f"{final['test_mean']:.4f} ± {final['test_std']:.4f} (mean ± std over {n} seeds)"
        if members > 1:
            test = f"{metrics['test']:.4f} (this export: the ensemble of the {n} seeds); one seed alone {test}"
    each = f" (each of the {members} members)" if members > 1 else ""
    rows = [
        (f"validation {metric}", "- (trained on the validation data)" if retrained else _num(metrics["val"])),
        (f"test {metric}", test),
        (f"parameters{each}", _num(metrics.get("params"))),
        (f"forward FLOPs, one sample{each}", _num(metrics.get("flops"))),
        (f"latency, one sample, {metrics.get('device')}{each}", f"{_num(metrics.get('latency_ms'), 2)} ms"),
    ]
    if retrained:
        rows += [(f"in the search: validation {metric}", _num(metrics.get("trial_val"))),
                 (f"in the search: test {metric}", _num(metrics.get("trial_test")))]
    rows += [(f"published: {name}", _num(value)) for name, value in (metrics.get("references") or {}).items()]
    table = "\n".join(["| | |", "| --- | ---: |", *(f"| {k} | {v} |" for k, v in rows)])
    selection = _selection(final, metric, metrics.get("members", 1)) if final else ""
    return f"""# {spec.summary()}

From study `{metrics['study']}`, trial {metrics['trial']}, on task `{metrics['task']}`.
Weights: {metrics['weights']}.

## Architecture

```text
{draw_arch(spec, input_spec)}
```

## Metrics

{table}
{selection}
Test {metric} is measured on the task's test split with the exported weights
(on {metrics['export_device']}). `metrics.json` holds these and the provenance: library versions,
the training recipe, and the study and trial this came from.

## Load it

```python
from nas import load_predictor
predictor = load_predictor("path/to/this/folder")
labels = predictor.predict(X)   # X: raw data as the task's files held it: (n, steps, features), or a list of series
```

`predict_proba(X)` gives class probabilities in `predictor.classes` order. From a shell,
`python scripts/predict.py path/to/this/folder new.npz --out predictions.csv` writes one row per
sample (`--help`: `.npz`, `.npy` or long-format `.csv`; known labels are scored). The predictor applies
what training applied: the training split's standardisation and padding to the task's length
(the `preprocessing` entry of `metrics.json`), and names the classes as the data did.
`load_model("path/to/this/folder")` returns the network alone (`nn.Module`, in `eval()` mode; an ensemble
export: a `SeedEnsemble` of the seeds' networks); it expects those standardised inputs and gives logits over
class ids: `out = model(x, mask)`.
`arch.json` and the `input` entry of `metrics.json` alone rebuild the untrained model:
`build_model(ArchSpec.from_json(arch_text), InputSpec.from_dict(metrics["input"]))`.
"""


def _selection(final: dict[str, Any], metric: str, members: int) -> str:
    """How the winner was picked (never on test) and what each final seed scored."""
    rows = [f"| {c['trial']} | `{c['summary']}` | {c['score_mean']:.4f} ± {c['score_std']:.4f} | {c['scored_by']} "
            f"| {len(c['values'])} |" for c in final["candidates"]]
    seeds = ", ".join(f"{t:.4f}" for t in final["test_per_seed"])
    exported = (f"The export holds all {members} seeds' weights and answers with their mean class probabilities "
                f"(test {metric} {final['ensemble_test']:.4f})." if members > 1 else
                "The exported weights are the first seed's.")
    return f"""
## How it was picked

The top {len(final['candidates'])} candidates of the search, scored again on validation data (never on test):
a cross-validated candidate by its folds' mean, any other by its mean over seeds on the validation split.
The winner, trial {final['winner']} (picked by {final.get('picked_by', 'best mean')}), was then retrained
on train + validation ({final['merged_samples']} samples) for {final['epochs']} epochs, {final['steps']} optimiser
steps at batch {final['batch_size']}, once per seed.

| trial | architecture | validation {metric} (mean ± std) | scored by | runs |
| ---: | --- | ---: | --- | ---: |
{chr(10).join(rows)}

Test {metric} per final seed: {seeds}. {exported}
"""


__all__ = ["draw_arch", "model_card"]
