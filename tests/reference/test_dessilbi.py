"""DessiLBI (Split LBI) on LeNet-5 with real MNIST digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grader.data import load_mnist
from reference.dessilbi import DessiLBI, prune_by_gamma, shrink, sparse_param_groups
from reference.models import get_model


def test_shrink_is_soft_thresholding():
    z = torch.tensor([-2.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.75])
    assert shrink(z, 1.0).tolist() == [-1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.75]


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="nu must be positive"):
        DessiLBI(get_model("lenet5").parameters(), nu=0)


def normalised(images) -> torch.Tensor:
    return (torch.from_numpy(images.copy()).float() / 255 - 0.1307) / 0.3081


def test_dessilbi_trains_lenet_along_a_sparse_path(data_dir):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, test = load_mnist("train", data_dir), load_mnist("test", data_dir)
    x, y = normalised(train.images[:4096]), torch.from_numpy(train.labels[:4096].copy())
    x_test, y_test = normalised(test.images[:2000]), torch.from_numpy(test.labels[:2000].copy())
    model = get_model("lenet5")
    optimizer = DessiLBI(sparse_param_groups(model))
    densities = {}
    for step in range(1, 301):
        batch = torch.randint(0, len(y), (64,))
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in (10, 300):
            densities[step] = optimizer.gamma_density()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.8  # chance is 0.1
    # Gamma starts empty and gains support along the path, staying sparse early on
    assert densities[10] == 0.0
    assert 0.0 < densities[300] < 0.05

    kept = prune_by_gamma(model, optimizer)
    assert set(kept) == {n for n, p in model.named_parameters() if n.endswith("weight")}
    for param, gamma in optimizer.gammas():
        assert torch.equal(param != 0, gamma != 0)
    # biases are dense parameters: no Gamma, never pruned
    assert all(not name.endswith("bias") for name in kept)
