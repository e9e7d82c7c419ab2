"""Assignment specs: the built-ins load, and bad specs fail naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from grader.assignment import (
    SpecError,
    builtin_names,
    load_assignment,
    parse_assignment,
)
from grader.data import get_dataset


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_builtin_spec_loads():
    names = builtin_names()
    assert {"cifar10", "mnist", "simplenn", "resnet20", "vgg-bn"} <= set(names)
    for name in names:
        spec = load_assignment(name)
        assert spec.name == name
        if spec.ops is not None:  # hand-written ops: points per op, no images, no rubric
            assert spec.dataset is None and spec.ops.max_points > 0
            continue
        assert len(spec.class_names) == 10
        assert spec.rubric, f"{name} has no rubric"


def test_cifar10_spec_defaults():
    spec = load_assignment("cifar10")
    assert (spec.id_column, spec.label_column) == ("Id", "Category")
    assert spec.class_names == get_dataset("cifar10").class_names
    assert spec.public_fraction == 0.5
    assert spec.model is None


def test_simplenn_spec_fixes_the_parameter_count():
    model = load_assignment("simplenn").model
    assert model is not None
    assert model.params_exact == 82_030
    assert model.input_shape == (3, 32, 32)


def test_rubric_gives_points_of_the_highest_threshold_reached():
    spec = load_assignment("resnet20")
    assert spec.points_for(0.95) == 10
    assert spec.points_for(0.90) == 10
    assert spec.points_for(0.86) == 8
    assert spec.points_for(0.50) == 0
    assert spec.max_points == 10


def test_spec_from_a_file_resolves_the_solution_next_to_it(tmp_path):
    (tmp_path / "labels.csv").write_text("Id,Category\n0,1\n")
    path = write_spec(
        tmp_path,
        'name = "lab"\ndataset = "mnist"\nsolution = "labels.csv"\n'
        "deadline = 2026-12-15T23:59:00Z\n",
    )
    spec = load_assignment(path)
    assert spec.solution_path() == tmp_path / "labels.csv"
    assert spec.deadline == dt.datetime(2026, 12, 15, 23, 59, tzinfo=dt.timezone.utc)
    assert spec.class_names == get_dataset("mnist").class_names


def test_unknown_key_is_named_with_the_allowed_ones(tmp_path):
    path = write_spec(tmp_path, 'name = "lab"\ndataset = "cifar10"\npublic_fracton = 0.3\n')
    with pytest.raises(SpecError) as err:
        load_assignment(path)
    message = str(err.value)
    assert "'public_fracton'" in message
    assert "public_fraction" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "lab"\ndataset = "imagenet"\n', "unknown dataset 'imagenet': use one of"),
        ('name = "lab"\ndataset = "cifar10"\nentry_rule = "first"\n', "'best', 'last'"),
        ('name = "lab"\ndataset = "cifar10"\ndaily_limit = "five"\n', "daily_limit must be an"),
        ('name = "lab"\ndataset = "cifar10"\npublic_fraction = 1.5\n', "public_fraction"),
        ('dataset = "cifar10"\n', "missing required key(s) 'name'"),
        ('name = "lab"\ndataset = "cifar10"\ndeadline = "soon"\n', "deadline = 'soon'"),
        (
            'name = "lab"\ndataset = "cifar10"\n[model]\nrules = ["bn_everywhere"]\n',
            "model: rules[0] = 'bn_everywhere' is not allowed",
        ),
        (
            'name = "lab"\ndataset = "cifar10"\n[model]\nentry = "Net"\nparams = 5\n',
            "unknown key(s) 'params'",
        ),
        ('name = "lab"\ndataset = "cifar10\n', "not valid TOML"),
    ],
)
def test_bad_values_are_errors_naming_the_key(tmp_path, text, expected):
    with pytest.raises(SpecError, match=None) as err:
        load_assignment(write_spec(tmp_path, text))
    assert expected in str(err.value)


def test_unknown_builtin_name_lists_the_builtins():
    with pytest.raises(SpecError) as err:
        load_assignment("resnet21")
    assert "resnet20" in str(err.value) and "cifar10" in str(err.value)


def test_conflicting_structure_rules_are_refused():
    raw = {
        "name": "lab",
        "dataset": "cifar10",
        "model": {"rules": ["batchnorm_after_conv", "no_batchnorm"]},
    }
    with pytest.raises(SpecError, match="cannot hold both"):
        parse_assignment(raw)
