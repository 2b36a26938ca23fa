"""linzoo's muP against Microsoft's ``mup`` package on the same MLP: same init, logits, lr, weight decay."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from linzoo import create_model
from linzoo.tasks.param_groups import build_optimizer

mup = pytest.importorskip("mup")

BASE, WIDTH = 32, 128  # m = 4
LR, WD = 1e-2, 0.1


def peer_mlp(width: int) -> nn.Sequential:
    """The linzoo MLP's layers (hidden_dims=[width, width // 2]) with mup's MuReadout head."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, width),
        nn.ReLU(),
        nn.Linear(width, width // 2),
        nn.ReLU(),
        mup.MuReadout(width // 2, 10),
    )


def both(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    ours = create_model("mlp", hidden_dims=[WIDTH, WIDTH // 2], dropout=0.0, linear={"mup": {"base_width": BASE}})
    torch.manual_seed(seed)
    peer = peer_mlp(WIDTH)
    mup.set_base_shapes(peer, peer_mlp(BASE), delta=peer_mlp(2 * BASE))
    return ours, peer


def test_same_init_and_logits() -> None:
    ours, peer = both()
    pairs = list(zip(ours.parameters(), peer.parameters(), strict=True))
    assert len(pairs) == 6
    for mine, theirs in pairs:
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=0)
    images = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(ours(images), peer(images), rtol=1e-5, atol=1e-6)
    # the readout's init scale is the base width's (std of U(-b, b) = b / sqrt(3), b = 1/sqrt(fan_in_base))
    head_std = ours.head.layers[0].weight.std().item()
    assert head_std == pytest.approx(1 / (3 * (BASE // 2)) ** 0.5, rel=0.1)


@pytest.mark.parametrize(
    ("ours_cls", "peer_fn"),
    [(torch.optim.AdamW, lambda: mup.MuAdamW), (torch.optim.SGD, lambda: mup.MuSGD)],
    ids=["adamw", "sgd"],
)
def test_same_per_parameter_lr_and_weight_decay(ours_cls: type, peer_fn) -> None:
    ours, peer = both()
    mine = build_optimizer(ours, functools.partial(ours_cls, lr=LR, weight_decay=WD))
    theirs = peer_fn()(peer.parameters(), lr=LR, weight_decay=WD)

    def per_parameter(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[tuple[float, float]]:
        settings = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
        return [settings[id(p)] for p in model.parameters()]

    ours_settings = per_parameter(mine, ours)
    # linzoo keeps weight decay off 1-D parameters (biases), mup decays everything: compare lrs
    # everywhere and weight decay on the weights.
    peer_settings = per_parameter(theirs, peer)
    for (name, parameter), (lr, wd), (peer_lr, peer_wd) in zip(
        ours.named_parameters(), ours_settings, peer_settings, strict=True
    ):
        assert lr == pytest.approx(peer_lr), name
        if parameter.dim() >= 2:
            assert wd == pytest.approx(peer_wd), name
        else:
            assert wd == 0.0
    # and the rules are not trivial: hidden weight lr is LR/4 under Adam, input weight lr 4 LR under SGD
    lrs = dict(zip([n for n, _ in ours.named_parameters()], [s[0] for s in ours_settings]))
    if ours_cls is torch.optim.AdamW:
        assert lrs["features.4.weight"] == pytest.approx(LR / 4)
    else:
        assert lrs["features.1.weight"] == pytest.approx(LR * 4)
