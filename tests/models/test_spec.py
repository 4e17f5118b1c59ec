"""ArchSpec: plain data that refuses to exist when it breaks a rule, and survives JSON exactly."""

from __future__ import annotations

import json

import pytest

from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, EmbeddingSpec, MixerSpec, SpecError

A = AttentionSpec


def arch(*mixers: MixerSpec, **kwargs) -> ArchSpec:
    return ArchSpec(d_model=kwargs.pop("d_model", 64), blocks=tuple(BlockSpec(m) for m in mixers), **kwargs)


def single(t="dot", heads=4, **kw) -> MixerSpec:
    return MixerSpec("single", (A(t, heads, **kw),))


GATED = MixerSpec("parallel", (A("dot", 4), A("additive", 1)), "gate")


def test_json_round_trip_is_exact_and_hash_stable():
    spec = arch(GATED, GATED, MixerSpec("fused", (A("dot", 2), A("local", 2, window=4))), readout="attention")
    text = spec.to_json()
    again = ArchSpec.from_json(text)
    assert again == spec and again.to_json() == text and again.hash() == spec.hash()
    assert json.loads(text)["schema_version"] == 1
    assert arch(single()).hash() != arch(single(heads=2)).hash()


def test_summary_is_one_readable_line():
    spec = arch(GATED, GATED, readout="attention")
    assert spec.summary() == "2x parallel[dot/h4 + additive/h1] merge=gate | d=64 pos=sinusoidal pool=attention"
    assert arch(single("local", 4, kv_heads=1, window=8), patch=4).summary() == (
        "1x local(w8)/h4kv1 | d=64 pos=sinusoidal pool=mean patch=4"
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: A("dto"), r"unknown attention type 'dto'; did you mean 'dot'\?"),
        (lambda: arch(single(heads=3)), r"heads=3 must divide d_model=64"),
        (lambda: A("dot", 4, kv_heads=3), r"kv_heads=3 must divide heads=4"),
        (lambda: A("local", 2, window=0), r"window=0 must be an integer >= 1"),
        (lambda: A("local", 2), r"window is required for 'local'"),
        (lambda: A("dot", 2, window=3), r"window=3 is only allowed for windowed types, not 'dot'"),
        (lambda: MixerSpec("fused", (A("dot", 2),)), r"'fused' needs at least 2 branches, got 1"),
        (lambda: MixerSpec("fused", (A("dot", 2), A("linear", 2))), r"'linear' attention has no score matrix and cannot be fused"),
        (lambda: MixerSpec("fused", (A("dot", 2), A("cosine", 4))), r"same heads and kv_heads"),
        (lambda: MixerSpec("parallel", (A("dot"),), "sum"), r"'parallel' needs at least 2 branches, got 1"),
        (lambda: MixerSpec("serial", (A("dot"),)), r"'serial' needs at least 2 branches, got 1"),
        (lambda: MixerSpec("parallel", (A("dot"), A("linear")), "max"), r"merge: unknown value 'max'.*allowed: sum, concat, gate"),
        (lambda: MixerSpec("serial", (A("dot"), A("linear")), "sum"), r"merge='sum' is only allowed for 'parallel'"),
        (lambda: MixerSpec("ring", (A("dot"),)), r"unknown topology 'ring'.*allowed: fused, parallel, serial, single"),
        (lambda: MixerSpec("paralel", (A("dot"), A("dot")), "sum"), r"unknown topology 'paralel'; did you mean"),
        (lambda: MixerSpec("single", (A("dot"), A("linear"))), r"'single' takes exactly 1 attention module, got 2"),
        (lambda: EmbeddingSpec("cnv", (3,)), r"unknown embedding 'cnv'; did you mean 'conv'\? allowed: conv, linear"),
        (lambda: EmbeddingSpec("conv"), r"kernels=\(\): embedding 'conv' takes 1 to 3 kernel sizes, got 0"),
        (lambda: EmbeddingSpec("conv", (3, 5, 7, 9)), r"takes 1 to 3 kernel sizes, got 4"),
        (lambda: EmbeddingSpec("conv", (3, 4)), r"kernel size 4 must be an odd integer >= 1"),
        (lambda: EmbeddingSpec("conv", (-1,)), r"kernel size -1 must be an odd integer >= 1"),
        (lambda: EmbeddingSpec("conv", (3,), channels=0), r"channels=0 must be an integer >= 1"),
        (lambda: EmbeddingSpec("conv", 3), r"kernels=3 must be a list of kernel sizes"),
        (lambda: EmbeddingSpec("linear", (3,)), r"kernels=\(3,\) is not allowed for embedding 'linear'"),
        (lambda: EmbeddingSpec("linear", channels=8), r"channels=8 is not allowed for embedding 'linear'"),
        (lambda: EmbeddingSpec("conv", (3,), norm="group"), r"norm: unknown value 'group' allowed: layer, batch"),
        (lambda: EmbeddingSpec("linear", norm="batch"), r"norm='batch' is not allowed for embedding 'linear'; only "
                                                        r"'conv' takes norm='batch'"),
        (lambda: arch(single(), position="relative"), r"position: unknown value 'relative'.*allowed: learned"),
        (lambda: arch(single(), readout="max"), r"readout: unknown value 'max'"),
        (lambda: arch(single("linear"), position="alibi"), r"'alibi' biases a score matrix, which 'linear' has not"),
        (lambda: arch(single("additive"), position="rotary"), r"'rotary' needs a dot-product score, which 'additive' has not"),
        (lambda: arch(single("dot", 1), d_model=9, position="rotary"), r"even head size"),
        (lambda: ArchSpec(d_model=64, blocks=()), r"at least 1 block"),
        (lambda: arch(single(), dropout=1.0), r"dropout=1.0 must be a number in \[0, 1\)"),
        (lambda: BlockSpec(single(), activation="tanh"), r"activation: unknown value 'tanh'"),
        (lambda: InputSpec(seq_len=8, num_outputs=2, features=3, vocab=5), r"exactly one of features=3 and vocab=5"),
    ],
)
def test_invalid_specs_name_field_value_and_rule(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_unknown_schema_version_is_refused():
    data = json.loads(arch(single()).to_json())
    data["schema_version"] = 99
    with pytest.raises(SpecError, match=r"schema_version=99 is not supported; this version reads 1"):
        ArchSpec.from_json(json.dumps(data))


def test_unknown_json_key_is_refused_by_name():
    data = json.loads(arch(single()).to_json())
    data["blocks"][0]["mixer"]["branches"][0]["temperature"] = 2
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['temperature'\]"):
        ArchSpec.from_dict(data)


def test_spec_errors_are_value_errors():
    assert issubclass(SpecError, ValueError)


# Written by the code before embeddings existed; its hash is stored with existing studies' trials.
OLD_JSON = (
    '{"blocks":[{"activation":"gelu","ff_mult":1,"mixer":{"branches":[{"heads":8,"kv_heads":1,"type":"local",'
    '"window":3}],"merge":null,"topology":"single"}}],"d_model":24,"dropout":0.0,"patch":3,"position":"none",'
    '"readout":"mean","schema_version":1}'
)


def test_json_from_before_embeddings_loads_as_linear_with_the_same_json_and_hash():
    spec = ArchSpec.from_json(OLD_JSON)
    assert spec.embedding == EmbeddingSpec("linear")
    assert spec.to_json() == OLD_JSON and spec.hash() == "ddadf98fa4d21eaa"
    assert spec.summary() == "1x local(w3)/h8kv1 | d=24 pos=none pool=mean patch=3"


def test_an_explicit_default_embedding_is_the_same_spec_as_none():
    data = json.loads(OLD_JSON)
    data["embedding"] = {"type": "linear", "kernels": [], "channels": None}
    assert ArchSpec.from_dict(data).to_json() == OLD_JSON


def test_conv_stem_round_trips_changes_the_hash_and_shows_in_the_summary():
    stem = EmbeddingSpec("conv", kernels=[7, 5, 3], channels=32)
    assert stem.kernels == (7, 5, 3)  # JSON lists become tuples, so equal specs compare equal
    spec = arch(GATED, embedding=stem)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.to_json() == spec.to_json()
    assert json.loads(spec.to_json())["embedding"] == {"type": "conv", "kernels": [7, 5, 3], "channels": 32}
    assert spec.hash() != arch(GATED).hash() != arch(GATED, embedding=EmbeddingSpec("conv", (7, 5, 3))).hash()
    assert spec.summary().endswith("pool=mean stem=conv7-5-3/c32")
    assert arch(GATED, embedding=EmbeddingSpec("conv", (3,))).summary().endswith("pool=mean stem=conv3")
    assert "stem" not in arch(GATED).summary()


def test_a_batch_norm_stem_is_another_spec_and_the_default_norm_keeps_older_json():
    layer, batch = EmbeddingSpec("conv", (5, 5), 128), EmbeddingSpec("conv", (5, 5), 128, "batch")
    assert "norm" not in json.loads(arch(GATED, embedding=layer).to_json())["embedding"], "older stems keep their hash"
    spec = arch(GATED, embedding=batch)
    assert json.loads(spec.to_json())["embedding"]["norm"] == "batch"
    assert ArchSpec.from_json(spec.to_json()) == spec and spec.hash() != arch(GATED, embedding=layer).hash()
    assert spec.summary().endswith("stem=conv5-5/c128/bn")


def test_unknown_embedding_key_is_refused_by_name():
    data = json.loads(arch(single()).to_json())
    data["embedding"] = {"type": "conv", "kernels": [3], "stride": 2}
    with pytest.raises(SpecError, match=r"embedding: unknown key\(s\) \['stride'\]"):
        ArchSpec.from_dict(data)
