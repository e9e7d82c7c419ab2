"""The public CIFAR-10 models students copy, re-implemented: exact parameter counts, a forward
pass on 32x32 images, registration through ``grader.public_models``, and their recognition in a
verified graph (pj2's "by no means a publicly available model" refuses kuangliu's MobileNetV2).

The counts are those of the published implementations (pytorch-cifar's models and
pytorch_resnet_cifar10's ``resnet*``; the CIFAR ResNets' also in He et al. 2016, table 6), with
the same parameter shapes.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch

from grader.assignment import load_assignment
from grader.models.fingerprint import candidates, match_public_model
from grader.models.graph import Graph
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.pipeline import verified_result
from grader.models.records import CaptureArgs, EvaluateArgs
from grader.models.registry import public_models
from grader.sandbox.inside.tasks import JobContext
from reference.models.zoo import ZOO, build

PARAMS = {
    "pytorch-cifar LeNet": 62_006,
    "pytorch-cifar VGG11": 9_231_114,
    "pytorch-cifar VGG13": 9_416_010,
    "pytorch-cifar VGG16": 14_728_266,
    "pytorch-cifar VGG19": 20_040_522,
    "pytorch-cifar ResNet18": 11_173_962,
    "pytorch-cifar ResNet34": 21_282_122,
    "pytorch-cifar ResNet50": 23_520_842,
    "pytorch-cifar ResNet101": 42_512_970,
    "pytorch-cifar ResNet152": 58_156_618,
    "pytorch-cifar PreActResNet18": 11_171_146,
    "pytorch-cifar PreActResNet34": 21_279_306,
    "pytorch-cifar PreActResNet50": 23_509_066,
    "pytorch-cifar PreActResNet101": 42_501_194,
    "pytorch-cifar PreActResNet152": 58_144_842,
    "pytorch-cifar SENet18": 11_260_354,
    "pytorch-cifar ResNeXt29_2x64d": 9_128_778,
    "pytorch-cifar ResNeXt29_4x64d": 27_104_586,
    "pytorch-cifar ResNeXt29_8x64d": 89_598_282,
    "pytorch-cifar ResNeXt29_32x4d": 4_774_218,
    "pytorch-cifar RegNetX_200MF": 2_321_946,
    "pytorch-cifar RegNetX_400MF": 4_779_338,
    "pytorch-cifar RegNetY_400MF": 5_714_362,
    "pytorch-cifar MobileNet": 3_217_226,
    "pytorch-cifar MobileNetV2": 2_296_922,
    "pytorch-cifar ShuffleNetV2(0.5)": 352_042,
    "pytorch-cifar ShuffleNetV2(1)": 1_263_854,
    "pytorch-cifar ShuffleNetV2(1.5)": 2_488_874,
    "pytorch-cifar ShuffleNetV2(2)": 5_338_026,
    "pytorch-cifar EfficientNetB0": 3_598_598,  # without the first block's unused expansion
    "pytorch-cifar GoogLeNet": 6_166_250,
    "pytorch-cifar DenseNet121": 6_956_298,
    "pytorch-cifar DenseNet161": 26_482_378,
    "pytorch-cifar DenseNet169": 12_493_322,
    "pytorch-cifar DenseNet201": 18_104_330,
    "pytorch-cifar densenet_cifar": 1_000_618,
    "pytorch-cifar DLA": 16_291_386,
    "pytorch-cifar SimpleDLA": 15_142_970,
    "pytorch_resnet_cifar10 resnet20": 269_722,
    "pytorch_resnet_cifar10 resnet32": 464_154,
    "pytorch_resnet_cifar10 resnet44": 658_586,
    "pytorch_resnet_cifar10 resnet56": 853_018,
    "pytorch_resnet_cifar10 resnet110": 1_727_962,
    "pytorch_resnet_cifar10 resnet1202": 19_421_274,
}


FAMILIES = [
    "pytorch-cifar LeNet", "pytorch-cifar VGG11", "pytorch-cifar ResNet18",
    "pytorch-cifar PreActResNet50", "pytorch-cifar SENet18", "pytorch-cifar ResNeXt29_32x4d",
    "pytorch-cifar RegNetY_400MF", "pytorch-cifar MobileNet", "pytorch-cifar MobileNetV2",
    "pytorch-cifar ShuffleNetV2(0.5)", "pytorch-cifar EfficientNetB0", "pytorch-cifar GoogLeNet",
    "pytorch-cifar densenet_cifar", "pytorch-cifar DLA", "pytorch-cifar SimpleDLA",
    "pytorch_resnet_cifar10 resnet20",
]  # fmt: skip
"""One model of each family (the larger ones share its code), run on a real image."""


def test_every_public_model_has_its_published_parameter_count():
    assert set(PARAMS) == set(ZOO) == set(public_models())
    built = dict(candidates())  # as the fingerprints see them: through the entry point
    for name, count in PARAMS.items():
        assert sum(math.prod(shape) for shape in built[name]) == count, name


def test_each_family_classifies_a_32x32_image():
    with torch.no_grad():
        for name in FAMILIES:
            torch.manual_seed(0)
            out = build(name).eval()(torch.rand(1, 3, 32, 32))
            assert tuple(out.shape) == (1, 10) and torch.isfinite(out).all(), name


@pytest.mark.parametrize(
    "name",
    [
        "pytorch-cifar MobileNetV2",
        "pytorch-cifar LeNet",
        "pytorch-cifar ShuffleNetV2(0.5)",
        "pytorch-cifar DLA",
    ],
)
def test_a_public_model_is_recognised_by_its_parameter_shapes(name):
    with torch.device("meta"):
        shapes = [tuple(p.shape) for p in build(name).parameters()]
    assert match_public_model(shapes) == name
    assert match_public_model(shapes[:-1] + [(11,)]) is None  # a changed layer is not a copy


def test_pj2_refuses_a_copied_mobilenet_v2_from_its_verified_graph(tmp_path):
    (tmp_path / "model.py").write_text(
        "from reference.models.zoo import build\n\n"
        "def build_model():\n    return build('pytorch-cifar MobileNetV2')\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out, out2 = Path(tmp) / "o", Path(tmp) / "o2"
        out.mkdir()
        out2.mkdir()
        report = capture(JobContext(tmp_path, out, {}, None), CaptureArgs())
        assert report.status == "exported", report.message
        record = evaluate(JobContext(out, out2, {}, None), EvaluateArgs(batch_size=2))
    assert record.status == "ok", record.message
    assert Graph(record.graph).parameter_count == PARAMS["pytorch-cifar MobileNetV2"]
    result = verified_result(record, load_assignment("pj2-cifar10").model)
    own = next(c for c in result.checks if c.name == "own_model")
    assert not own.passed and "exactly pytorch-cifar MobileNetV2" in own.message
    flagged = verified_result(record, load_assignment("alexnet-cifar10").model)
    assert "same architecture as pytorch-cifar MobileNetV2" in flagged.flags
