import pytest

from nas.models.embeddings import Embedding, embedding_names, get_embedding, register_embedding


def test_linear_conv_and_shortconv_are_registered():
    assert {"linear", "conv", "shortconv"} <= set(embedding_names())


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="embedding 'conv' is already registered"):

        @register_embedding("conv")
        class Another(Embedding):
            def forward(self, x, mask):
                return x, mask


def test_unknown_name_lists_known_names_and_suggests_close_match():
    with pytest.raises(ValueError, match=r"unknown embedding 'lineer'; did you mean 'linear'\? allowed: conv, linear, shortconv"):
        get_embedding("lineer")
