import pytest
from torch import nn

from nas.models.attention import attention_names, get_attention, register_attention


def test_every_required_family_is_registered():
    assert {"dot", "general", "additive", "cosine", "local", "linear"} <= set(attention_names())


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="'dot' is already registered"):

        @register_attention("dot")
        class Another(nn.Module):
            pass


def test_unknown_name_lists_known_names_and_suggests_close_match():
    with pytest.raises(ValueError, match=r"unknown attention type 'dto'; did you mean 'dot'\? allowed: .*additive"):
        get_attention("dto")
