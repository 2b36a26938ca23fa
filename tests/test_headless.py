"""timm's transfer-learning API on the classifiers: forward_features, reset_classifier, num_classes=0."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import linzoo
from linzoo.layers.heads import ClassificationHead
from linzoo.layers.linear import FactoryLinear

SMALL = {
    "mlp": {"hidden_dims": [32, 16]},
    "cnn": {"channels": [8, 16], "head_hidden_dims": [12]},
    "transformer": {"dim": 16, "depth": 1, "num_heads": 2, "patch_size": 7},
    "mixer": {"dim": 16, "depth": 1, "patch_size": 7},
}
FEATURES = {"mlp": 16, "cnn": 16, "transformer": 16, "mixer": 16}


@pytest.mark.parametrize("name", list(SMALL))
def test_forward_is_the_head_of_forward_features(name: str) -> None:
    torch.manual_seed(0)
    model = linzoo.create_model(name, **SMALL[name]).eval()
    images = torch.rand(3, 1, 28, 28)
    features = model.forward_features(images)
    assert features.shape == (3, FEATURES[name]) == (3, model.num_features)
    torch.testing.assert_close(model(images), model.head(features))
    assert model(images).shape == (3, 10)


@pytest.mark.parametrize("name", list(SMALL))
def test_num_classes_zero_returns_the_features(name: str) -> None:
    torch.manual_seed(0)
    headless = linzoo.create_model(name, num_classes=0, **SMALL[name]).eval()
    assert isinstance(headless.head, nn.Identity)
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(headless(images), headless.forward_features(images))
    assert headless(images).shape == (2, FEATURES[name])


@pytest.mark.parametrize("name", list(SMALL))
def test_reset_classifier_puts_a_new_factory_head_on(name: str) -> None:
    spec = {"roles": {"head": {"init": "zeros", "bias_init": "constant", "bias_value": 0.5}}}
    model = linzoo.create_model(name, linear=spec, **SMALL[name]).eval()
    body = {key: value.clone() for key, value in model.state_dict().items() if not key.startswith("head.")}
    model.reset_classifier(4)
    assert isinstance(model.head, ClassificationHead) and model.num_classes == 4
    linears = [m for m in model.head.modules() if isinstance(m, FactoryLinear)]
    assert linears and all(linear.role == "head" for linear in linears)
    assert linears[-1].out_features == 4 and linears[0].in_features == model.num_features
    assert all(torch.count_nonzero(linear.weight) == 0 for linear in linears)  # the model's spec: zeros
    assert all(torch.all(linear.bias == 0.5) for linear in linears)
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model(images), torch.full((2, 4), 0.5))
    for key, value in body.items():
        assert torch.equal(model.state_dict()[key], value), key
    model.reset_classifier(0)
    assert isinstance(model.head, nn.Identity)
    assert model(images).shape == (2, FEATURES[name])


def test_reset_classifier_keeps_the_cnn_head_hidden_layers() -> None:
    model = linzoo.create_model("cnn", **SMALL["cnn"])
    model.reset_classifier(3)
    widths = [(m.in_features, m.out_features) for m in model.head.modules() if isinstance(m, FactoryLinear)]
    assert widths == [(16, 12), (12, 3)]


def test_negative_num_classes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"num_classes=-1: expected an integer >= 0 \(0: no head"):
        linzoo.create_model("mlp", num_classes=-1)
