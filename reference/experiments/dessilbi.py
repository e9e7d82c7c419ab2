"""DessiLBI on LeNet-5 and MNIST: accuracy and the sparsity path (Fudan DATA130011 PJ2; Fu et
al., "DessiLBI: Exploring Structural Sparsity of Deep Networks via Differential Inclusion Paths",
ICML 2020).

LeNet-5 trains with DessiLBI (:mod:`reference.dessilbi`) and, for comparison, with plain SGD from
the same initialisation on the same batches. Along the DessiLBI run the support of Gamma grows
from empty: the **sparsity path** is the fraction of weights in that support, recorded at every
step overall and per layer after every epoch. After each epoch the validation accuracy is taken
twice: with the dense weights W, and with W pruned to Gamma's support (the sparse network the
path selects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from reference.dessilbi import DessiLBI, prune_by_gamma, sparse_param_groups
from reference.experiments import common
from reference.experiments.loop import TrainValSplit, evaluate
from reference.train_config import setting

NAME = "dessilbi"
FIGURE_NAMES = {"accuracy": "dessilbi_accuracy.png", "path": "dessilbi_sparsity_path.png"}
LBI, SGD = "DessiLBI", "SGD"


@dataclass(frozen=True)
class Config(common.EpochConfig):
    """Settings of the DessiLBI run and its SGD comparison."""

    lr: float = setting(1.0, "DessiLBI step size alpha.", minimum=0, min_open=True)
    kappa: float = setting(0.1, "DessiLBI damping: Gamma = kappa * shrink(Z).", minimum=0,
                           min_open=True)  # fmt: skip
    nu: float = setting(30.0, "DessiLBI coupling of W and Gamma.", minimum=0, min_open=True)
    momentum: float = setting(0.9, "Momentum of both optimizers.", minimum=0)
    sgd_lr: float = setting(0.05, "Learning rate of the SGD comparison.", minimum=0,
                            min_open=True)  # fmt: skip
    out_dir: Path = setting(Path("out/dessilbi"), "Output folder.", flag="--out")


SCALES = {
    "tiny": Config(epochs=2, batch_size=32, train_images=512, val_images=256),
    "small": Config(epochs=10, batch_size=64, train_images=8192, val_images=2000),
    "full": Config(epochs=20, batch_size=128, val_images=10_000, out_dir=Path("out/dessilbi-full")),
}


def gamma_density(model: nn.Module, optimizer: DessiLBI) -> dict[str, float]:
    """Per sparse layer, and ``all`` together, the fraction of weights in Gamma's support."""
    names = {id(p): name for name, p in model.named_parameters()}
    pairs = optimizer.gammas()
    density = {names[id(p)]: float((g != 0).float().mean()) for p, g in pairs}
    density["all"] = optimizer.gamma_density()
    return density


def pruned_accuracy(model: nn.Module, optimizer: DessiLBI, split: TrainValSplit) -> float:
    """Validation accuracy with every weight outside Gamma's support set to zero."""
    saved = {key: value.clone() for key, value in model.state_dict().items()}
    prune_by_gamma(model, optimizer)
    _loss, accuracy = evaluate(model, split.val_images, split.val_labels)
    model.load_state_dict(saved)
    return accuracy


def run(config: Config) -> dict[str, Any]:
    """Train LeNet-5 with DessiLBI (recording the path) and with SGD; write figures and JSON."""

    def lbi(model):
        return DessiLBI(
            sparse_param_groups(model),
            lr=config.lr,
            kappa=config.kappa,
            nu=config.nu,
            momentum=config.momentum,
        )

    def on_step(model, optimizer):
        path["step_density"].append(optimizer.gamma_density())

    def on_epoch(epoch, model, optimizer, split):
        path["epoch_density"].append(gamma_density(model, optimizer))
        path["pruned_val_accuracy"].append(pruned_accuracy(model, optimizer, split))

    build = common.reference_model("lenet5")
    path: dict[str, list[Any]] = {
        "step_density": [],
        "epoch_density": [],
        "pruned_val_accuracy": [],
    }
    variants = [
        common.Variant(LBI, build, lbi, after_step=on_step, after_epoch=on_epoch, records=path),
        common.Variant(SGD, build, common.optimizer("sgd", config.sgd_lr, config.momentum)),
    ]
    return common.run_variants(NAME, config, "mnist", variants, plot=plot, summarise=summarise)


def plot(
    trained: Sequence[common.TrainedVariant], out_dir: Path, config: Config
) -> dict[str, Path]:
    """Accuracy per epoch (dense, pruned to Gamma, SGD) and the sparsity path."""
    plt = common.pyplot()
    lbi = next(t for t in trained if t.curves.label == LBI)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for t in trained:
        epochs = range(1, len(t.curves.val_accuracy) + 1)
        ax.plot(epochs, t.curves.val_accuracy, marker=".", label=f"{t.curves.label} (dense W)")
    pruned = lbi.variant.records["pruned_val_accuracy"]
    ax.plot(range(1, len(pruned) + 1), pruned, marker="s", label=f"{LBI}, W pruned to supp(Gamma)")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="LeNet-5 on MNIST")
    ax.legend()
    accuracy = common.save_figure(fig, out_dir / FIGURE_NAMES["accuracy"])

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    left.plot(lbi.variant.records["step_density"], linewidth=0.9)
    left.set(xlabel="step", ylabel="fraction of weights in supp(Gamma)",
             title="Sparsity path (all layers)")  # fmt: skip
    per_epoch = lbi.variant.records["epoch_density"]
    for layer in per_epoch[0]:
        if layer != "all":
            right.plot(range(1, len(per_epoch) + 1), [d[layer] for d in per_epoch],
                       marker=".", label=layer)  # fmt: skip
    right.set(xlabel="epoch", ylabel="fraction in supp(Gamma)", title="Per layer")
    right.legend(fontsize=8)
    path = common.save_figure(fig, out_dir / FIGURE_NAMES["path"])
    return {"accuracy": accuracy, "path": path}


def summarise(trained: Sequence[common.TrainedVariant], config: Config) -> dict[str, Any]:
    """Per run the last epoch's figures; DessiLBI's final density and pruned accuracy."""
    lbi = next(t for t in trained if t.curves.label == LBI)
    records = lbi.variant.records
    return {
        "runs": {t.curves.label: common.epoch_summary(t.curves) for t in trained},
        "final_density": records["epoch_density"][-1],
        "first_step_density": records["step_density"][0],
        "final_pruned_val_accuracy": records["pruned_val_accuracy"][-1],
    }


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What ``grader reproduce dessilbi`` prints."""
    summary = document["summary"]
    return [
        *common.epoch_summary_lines(document),
        f"Gamma's support: {summary['final_density']['all']:.2%} of the weights; pruned to it "
        f"the net has validation accuracy {summary['final_pruned_val_accuracy']:.4f}",
    ]
