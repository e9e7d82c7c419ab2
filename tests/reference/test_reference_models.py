"""Reference models: parameter counts derived by hand from each definition, and output shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.models import MODELS, dataset_for, get_model
from reference.models.resnet import PadShortcut


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def fc(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def bn(channels: int) -> int:
    return 2 * channels  # weight and bias; running statistics are buffers


def cifar_resnet_params(n: int) -> int:
    """He et al. 2016 sec. 4.2 net with 6n+2 layers, option A shortcuts (no parameters)."""
    total = conv(3, 3, 16, bias=False) + bn(16)
    previous = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv(3, previous, width, False) + bn(width) + conv(3, width, width, False)
            total += bn(width)
            previous = width
    return total + fc(64, 10)


def resnet18_params(c: int) -> int:
    """Stem + 4 stages of 2 basic blocks at c, 2c, 4c, 8c; 1x1 projection shortcuts."""
    total = conv(3, 3, c, bias=False) + bn(c)
    previous = c
    for width in (c, 2 * c, 4 * c, 8 * c):
        for _ in range(2):
            total += conv(3, previous, width, False) + bn(width) + conv(3, width, width, False)
            total += bn(width)
            if previous != width:
                total += conv(1, previous, width, False) + bn(width)
            previous = width
    return total + fc(8 * c, 10)


SIMPLENN = conv(5, 3, 8) + conv(3, 8, 16) + fc(16 * 6 * 6, 120) + fc(120, 84) + fc(84, 10)
SIMPLENN_BN = SIMPLENN - 8 - 16 + bn(8) + bn(16)  # conv biases dropped before BatchNorm
LENET5 = conv(5, 1, 6) + conv(5, 6, 16) + fc(16 * 5 * 5, 120) + fc(120, 84) + fc(84, 10)
ALEXNET = (
    conv(3, 3, 64)
    + conv(3, 64, 192)
    + conv(3, 192, 384)
    + conv(3, 384, 256)
    + conv(3, 256, 256)
    + fc(256 * 4 * 4, 1024)
    + fc(1024, 512)
    + fc(512, 10)
)

EXPECTED = {
    "simplenn": SIMPLENN,
    "simplenn_bn": SIMPLENN_BN,
    "simplenn_swish": SIMPLENN,
    "resnet20": cifar_resnet_params(3),
    "resnet32": cifar_resnet_params(5),
    "resnet44": cifar_resnet_params(7),
    "resnet56": cifar_resnet_params(9),
    "resnet18_cifar": resnet18_params(64),
    "alexnet_cifar": ALEXNET,
    "lenet5": LENET5,
}


def test_hand_counts_match_the_published_figures():
    assert SIMPLENN == 82_030  # the lab handout's number
    assert cifar_resnet_params(3) == 269_722  # "0.27M" in He et al. 2016, table 6
    assert round(cifar_resnet_params(9) / 1e6, 2) == 0.85  # ResNet-56: "0.85M"
    assert round(resnet18_params(64) / 1e6, 1) == 11.2


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count_and_output_shape(name):
    model = get_model(name)
    assert n_params(model) == EXPECTED[name]
    shape = (2, 1, 28, 28) if dataset_for(name) == "mnist" else (2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (2, 10)


def test_simplenn_class_name_and_variants():
    assert type(get_model("simplenn")).__name__ == "SimpleNN"
    assert sum(isinstance(m, nn.BatchNorm2d) for m in get_model("simplenn_bn").modules()) == 2
    swish = get_model("simplenn_swish")
    assert sum(isinstance(m, nn.SiLU) for m in swish.modules()) == 4
    assert not any(isinstance(m, nn.ReLU) for m in swish.modules())


@pytest.mark.parametrize("channels", [16, 32])
def test_resnet18_width_is_configurable(channels):
    model = get_model("resnet18_cifar", channels=channels)
    assert n_params(model) == resnet18_params(channels)


@pytest.mark.parametrize(
    ("activation", "module"),
    [
        ("elu", nn.ELU),
        ("leakyrelu", nn.LeakyReLU),
        ("sigmoid", nn.Sigmoid),
        ("tanh", nn.Tanh),
        ("swish", nn.SiLU),
    ],
)
def test_resnet18_activation_is_configurable(activation, module):
    model = get_model("resnet18_cifar", channels=8, activation=activation)
    assert sum(isinstance(m, module) for m in model.modules()) == 1 + 2 * 8
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_bad_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="gelu.*elu, leakyrelu, relu, sigmoid, swish, tanh"):
        get_model("resnet18_cifar", activation="gelu")


def test_unknown_model_lists_the_registered_names():
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet20.*simplenn"):
        get_model("resnet19")


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    out = PadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_vgg_entries_build_with_and_without_batch_norm():
    assert MODELS["vgg_a"] == MODELS["vgg_a_bn"] == "reference.models.vgg:vgg_a"
    plain, normed = get_model("vgg_a", width=0.125), get_model("vgg_a_bn", width=0.125)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in normed.modules()) == 8  # one per conv
    normed.eval()
    with torch.no_grad():
        assert normed(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_lenet_trains_on_mnist_and_the_rest_on_cifar10():
    assert dataset_for("lenet5") == "mnist"
    assert {dataset_for(n) for n in MODELS if n != "lenet5"} == {"cifar10"}
