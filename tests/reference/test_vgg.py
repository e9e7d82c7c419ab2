"""VGG-A for 32x32 inputs: parameter counts derived by hand, output shapes, BN placement."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.models.vgg import VGG, VGG_A, VGG_BatchNorm, vgg_a


def conv(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


# Eight 3x3 convolutions of configuration A, then 512 -> 512 -> 512 -> 10 on the 1x1 map.
HAND_CONV = (
    conv(3, 64)
    + conv(64, 128)
    + conv(128, 256)
    + conv(256, 256)
    + conv(256, 512)
    + conv(512, 512) * 3
)
HAND_LINEAR = linear(512, 512) * 2 + linear(512, 10)
HAND_BN = 2 * (64 + 128 + 256 + 256 + 512 * 4)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_vgg_a_parameter_count_matches_the_hand_derivation():
    assert HAND_CONV + HAND_LINEAR == 9_750_922
    assert n_params(vgg_a()) == HAND_CONV + HAND_LINEAR
    assert n_params(VGG_A()) == HAND_CONV + HAND_LINEAR


def test_vgg_a_bn_adds_one_scale_and_shift_per_channel():
    assert n_params(vgg_a(batch_norm=True)) == HAND_CONV + HAND_LINEAR + HAND_BN
    assert n_params(VGG_BatchNorm()) == 9_756_426


@pytest.mark.parametrize("batch_norm", [False, True])
def test_output_shape_is_batch_by_classes(batch_norm: bool):
    model = vgg_a(batch_norm=batch_norm, num_classes=7, width=0.125).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


def test_batch_norm_follows_every_convolution():
    layers = list(vgg_a(batch_norm=True).features)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    assert len(convs) == 8
    for i in convs:
        assert isinstance(layers[i + 1], nn.BatchNorm2d)
        assert layers[i + 1].num_features == layers[i].out_channels
    assert not any(isinstance(m, nn.BatchNorm2d) for m in vgg_a().modules())


def test_norm_layer_and_width_are_configurable():
    model = VGG(batch_norm=False, norm_layer=lambda c: nn.GroupNorm(4, c), width=0.25)
    groups = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert [g.num_channels for g in groups] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert model.classifier[0].in_features == 128


def test_same_seed_gives_the_same_initialisation():
    torch.manual_seed(3)
    a = vgg_a(width=0.125)
    torch.manual_seed(3)
    b = vgg_a(width=0.125)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_bad_width_is_refused():
    with pytest.raises(ValueError, match="width"):
        vgg_a(width=0)
