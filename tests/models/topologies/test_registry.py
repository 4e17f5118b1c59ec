import pytest
from torch import nn

from nas.models.spec import MERGES, TOPOLOGIES, MixerSpec, AttentionSpec as A, SpecError
from nas.models.topologies import Topology, get_topology, merge_names, register_topology, topology_names


def test_the_four_topologies_are_registered_in_their_fixed_order():
    assert topology_names()[:4] == ("single", "parallel", "serial", "fused")


def test_spec_constants_the_search_layer_imports_are_the_registry():
    assert TOPOLOGIES == topology_names() and MERGES == merge_names() == ("sum", "concat", "gate")


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match=r"topology 'serial' is already registered by SerialTopology\(\)"):

        @register_topology("serial")
        class Another(Topology):
            def build(self, spec, d_model, position, dropout) -> nn.Module:
                return nn.Identity()

    assert topology_names().count("serial") == 1


def test_unknown_name_lists_known_names_and_suggests_close_match():
    with pytest.raises(ValueError, match=r"unknown topology 'paralel'; did you mean 'parallel'\? allowed: fused, "
                                         r"parallel, serial, single"):
        get_topology("paralel")


def test_a_spec_with_an_unknown_topology_is_a_spec_error():
    with pytest.raises(SpecError, match=r"unknown topology 'serail'; did you mean 'serial'\?"):
        MixerSpec("serail", (A("dot"), A("dot")))


def test_merge_rule_names_the_topologies_that_take_one():
    with pytest.raises(SpecError, match=r"merge='gate' is only allowed for 'parallel', not 'fused'"):
        MixerSpec("fused", (A("dot"), A("cosine")), "gate")
