"""Model submissions that lie about themselves, through the one pipeline in real boxes.

Each attack is written as a hostile student would write it against this design: the student's
code runs in the capture stage with full control of its process, so it forges the capture
report, patches the grader's modules, exits early, writes its own graph artifact, pads or hides
parameters, swaps the weights, or aims bombs at the host. None may earn a passed check or a
score: every number that counts comes from the verified evaluation of the artifact.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import SIMPLENN_CODE, SUBMISSIONS, student_folder

from grader.assignment import parse_assignment
from grader.models.inside.artifact import GRAPH_FILE, TENSORS_FILE
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.pipeline import grade_model, model_pool
from grader.models.result import GradeStatus
from grader.sandbox.jail import bubblewrap_available

ADA_WEIGHTS = (SUBMISSIONS / "simplenn" / "ada" / "model.pt").read_bytes()
LAB = {
    "name": "lab",
    "dataset": "cifar10",
    "model": {"params_exact": 82_030, "reference": "simplenn", "time_limit_s": 120,
              "memory_limit_mb": 2048, "rules": ["has_pooling"]},
}  # fmt: skip
OUT_DIR = "import sys, pathlib\nOUT = pathlib.Path(sys.path[-1]).parent / 'out'\n"


@pytest.fixture(scope="module")
def lab():
    return parse_assignment(LAB)


@pytest.fixture(scope="module")
def pool(lab, data_dir):
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    with model_pool(lab, data_dir=data_dir) as boxes:
        yield boxes


def grade(pool, lab, tmp_path, name, code, **kwargs):
    folder = student_folder(tmp_path, name, code, weights=kwargs.pop("weights", ADA_WEIGHTS))
    return grade_model(folder, lab, pool=pool, **kwargs)


def assert_refused(result, *words: str) -> None:
    assert result.status is GradeStatus.INVALID, (result.status, result.message)
    assert result.logits is None, "a refused model must not be scored"
    for word in words:
        assert word in result.message, result.message


def test_the_honest_simplenn_is_verified_and_scored(pool, lab, tmp_path):
    result = grade(pool, lab, tmp_path, "honest", SIMPLENN_CODE)
    assert result.status is GradeStatus.OK, result.message
    assert result.verified and result.total_params == 82_030
    assert result.logits.shape == (1017, 10)
    assert {c.name for c in result.checks} >= {"weights", "params_exact", "has_pooling"}


def test_a_forged_report_without_a_graph_earns_nothing(pool, lab, tmp_path):
    forged = {"status": "ok", "graph": None, "flops": 1, "output_shape": [8, 10], "finite": True,
              "deterministic": True, "images": 1017}  # fmt: skip
    code = OUT_DIR + (
        "import json, os, numpy\n"
        "json.dump({'status': 'exported'}, open(OUT / 'capture.json', 'w'))\n"
        f"json.dump({forged!r}, open(OUT / 'evaluation.json', 'w'))\n"
        "numpy.save(OUT / 'logits.npy', numpy.eye(10, dtype='float32')[[0] * 1017])\n"
        "os._exit(0)\n"
    )
    assert_refused(grade(pool, lab, tmp_path, "forger", code), "no graph artifact")


def test_walking_the_stack_to_the_capture_and_rewriting_its_report(pool, lab, tmp_path):
    code = (
        SIMPLENN_CODE.replace(
            "    def forward(self, x):",
            "    def forward(self, x):\n"
            "        import inspect\n"
            "        for frame in inspect.stack():\n"
            "            ctx = frame.frame.f_locals.get('ctx')\n"
            "            if ctx is not None and hasattr(ctx, 'out'):\n"
            "                from grader.sandbox.protocol import write_record\n"
            "                from grader.models.records import CaptureReport\n"
            "                write_record(ctx.out / 'capture.json', CaptureReport('exported'))\n"
            "                import os; os._exit(0)",
        )
        .replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)")
        .replace("16 * 6 * 6", "16 * 5 * 5")
    )
    assert_refused(grade(pool, lab, tmp_path, "walker", code, weights=None,
                         require_weights=False), "no graph artifact")  # fmt: skip


def test_patching_the_grader_in_the_students_process_changes_nothing(pool, lab, tmp_path):
    code = (
        "import grader.models.graph as g, grader.models.rules as r\n"
        "import grader.models.inside.evaluate as e\n"
        "g.Graph.parameter_count = property(lambda self: 82030)\n"
        "r.parameter_checks = lambda *a, **k: []\n"
        "e.evaluate = lambda *a, **k: None\n"
        + SIMPLENN_CODE.replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)").replace(
            "16 * 6 * 6", "16 * 5 * 5"
        )
    )
    result = grade(pool, lab, tmp_path, "patcher", code, weights=None, require_weights=False)
    assert result.status is GradeStatus.INVALID and result.verified
    assert result.total_params == 62_958
    assert "62,958 parameters; the assignment requires exactly 82,030" in result.message


def _forged_artifact(tmp_path: Path, *, extra: int = 0, op: str | None = None) -> dict[str, str]:
    """A real artifact of a small linear model, then doctored: an unread padding tensor of
    ``extra`` values, or one operation renamed to ``op``."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    folder = tmp_path / "forged"
    folder.mkdir()
    tensors = write_artifact(export_model(model, (3, 32, 32)), folder, graph_file=GRAPH_FILE)
    graph = json.loads((folder / GRAPH_FILE).read_text())
    if extra:
        tensors["features.0.weight"] = torch.zeros(extra)
        graph = _shift_refs(graph, len(graph["inputs"]))  # operations move up by one value
        graph["inputs"].append({"kind": "parameter", "name": "features.0.weight",
                                "dtype": "float32", "shape": [extra]})  # fmt: skip
    if op is not None:
        graph["nodes"][0]["op"] = op
    (folder / GRAPH_FILE).write_text(json.dumps(graph))
    write_tensors(tensors, folder)
    return {
        n: base64.b64encode((folder / n).read_bytes()).decode() for n in (GRAPH_FILE, TENSORS_FILE)
    }


def _shift_refs(graph: dict, first_node: int) -> dict:
    """Renumber refs to operations after one more input was appended at ``first_node``."""

    def walk(value):
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict) and set(value) == {"ref"}:
            return {"ref": value["ref"] + 1 if value["ref"] >= first_node else value["ref"]}
        return value

    for node in graph["nodes"]:
        node["args"], node["kwargs"] = walk(node["args"]), walk(node["kwargs"])
    graph["outputs"] = [{**o, "ref": o["ref"] + 1 if o["ref"] >= first_node else o["ref"]}
                        for o in graph["outputs"]]  # fmt: skip
    return graph


def _writes_artifact(files: dict[str, str]) -> str:
    return OUT_DIR + (
        "import base64, json, os\n"
        f"for name, data in {files!r}.items():\n"
        "    (OUT / name).write_bytes(base64.b64decode(data))\n"
        "json.dump({'status': 'exported'}, open(OUT / 'capture.json', 'w'))\n"
        "os._exit(0)\n"
    )


def test_a_hand_made_artifact_padded_to_the_required_count_is_counted_as_it_runs(
    pool, lab, tmp_path
):
    linear = 3 * 32 * 32 * 10 + 10
    code = _writes_artifact(_forged_artifact(tmp_path, extra=82_030 - linear))
    result = grade(pool, lab, tmp_path, "padder", code, weights=None, require_weights=False)
    assert result.status is GradeStatus.INVALID and result.verified
    assert result.total_params == linear
    assert result.unused == ["features.0.weight"]
    failed = {c.name: c.message for c in result.failed_checks}
    assert "not counted: features.0.weight" in failed["params_exact"]
    assert "the model has no pooling layer" in failed["has_pooling"]


@pytest.mark.parametrize(
    "op", ["aten.from_file.default", "builtins.exec", "aten.as_strided.default"]
)
def test_an_artifact_with_an_operation_outside_the_allowlist_never_runs(pool, lab, tmp_path, op):
    code = _writes_artifact(_forged_artifact(tmp_path, op=op))
    result = grade(pool, lab, tmp_path, "smuggler", code, weights=None, require_weights=False)
    assert_refused(result, "is not one the grader runs")


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("'[' * 50000 + ']' * 50000", "nests deeper than"),
        ("json.dumps({'status': 'exported', 'sneaky': 1})", "unknown key(s) 'sneaky'"),
        ("'x' * (20 * 1024 * 1024)", "bytes, over the"),
    ],
)
def test_malformed_reports_are_the_students_fault_never_a_traceback(
    pool, lab, tmp_path, report, expected
):
    code = OUT_DIR + f"import json, os\n(OUT / 'capture.json').write_text({report})\nos._exit(0)\n"
    result = grade(pool, lab, tmp_path, "bomber", code)
    assert_refused(result, expected)


def test_weights_swapped_inside_the_capture_are_caught(pool, lab, tmp_path):
    code = SIMPLENN_CODE.replace(
        "    def forward(self, x):",
        "    def load_state_dict(self, state, strict=True):\n"
        "        return super().load_state_dict({k: v * 0 + 0.01 for k, v in state.items()})\n\n"
        "    def forward(self, x):",
    )
    result = grade(pool, lab, tmp_path, "swapper", code)
    assert_refused(result, "differs from model.pt")


def test_hiding_parameters_from_parameters_does_not_hide_them(pool, lab, tmp_path):
    code = SIMPLENN_CODE + (
        "\n    def parameters(self, recurse=True):\n"
        "        return (p for n, p in self.named_parameters(recurse=recurse) if 'fc1' not in n)\n"
    )
    result = grade(pool, lab, tmp_path, "hider", code)
    assert result.status is GradeStatus.OK, result.message
    assert result.total_params == 82_030  # the graph reads fc1 whatever parameters() says


def test_a_model_that_draws_random_numbers_in_evaluation_is_refused(pool, lab, tmp_path):
    code = SIMPLENN_CODE.replace("return self.fc3(x)",
                                 "return F.dropout(self.fc3(x), 0.5, training=True)")  # fmt: skip
    result = grade(pool, lab, tmp_path, "dice", code)
    assert_refused(result, "train not a literal False", "model.eval()")


def test_a_model_whose_logits_depend_on_the_rest_of_its_batch_fails(pool, lab, tmp_path):
    code = SIMPLENN_CODE.replace("x = x.flatten(1)", "x = (x - x.mean(0, keepdim=True)).flatten(1)")
    result = grade(pool, lab, tmp_path, "mixer", code)
    assert_refused(result, "deterministic: the logits of an image change")


def test_a_model_that_cannot_be_captured_is_graded_unverified_or_refused(pool, lab, tmp_path):
    code = SIMPLENN_CODE.replace("return self.fc3(x)",
                                 "return self.fc3(x) if x.sum() > 0 else -self.fc3(x)")  # fmt: skip
    result = grade(pool, lab, tmp_path, "branchy", code)
    assert result.status is GradeStatus.INVALID and not result.verified  # lab has checks
    assert all(c.message.startswith("not verified") for c in result.checks)
    assert any(f.startswith("unverified: the forward pass decides on the VALUES") for f in
               result.flags)  # fmt: skip
    plain = parse_assignment({**LAB, "model": {"time_limit_s": 120}})
    open_result = grade(pool, plain, tmp_path, "branchy2", code)
    assert open_result.status is GradeStatus.OK and not open_result.verified
    assert open_result.logits.shape == (1017, 10)
    strict = parse_assignment({**LAB, "model": {"time_limit_s": 120, "unverified": "invalid"}})
    assert grade(pool, strict, tmp_path, "branchy3", code).status is GradeStatus.INVALID


LOOKUP = """
import torch
from torch import nn


class Net(nn.Module):
    \"\"\"Remembers the exact test images, which its weights file holds with their labels; its
    Python lookup cannot be captured as a graph.\"\"\"

    def __init__(self):
        super().__init__()
        self.register_buffer("images", torch.zeros(1017, 3, 32, 32, dtype=torch.uint8))
        self.register_buffer("labels", torch.zeros(1017, dtype=torch.int64))

    def forward(self, x):
        table = {i.numpy().tobytes(): int(y) for i, y in zip(self.images, self.labels)}
        out = torch.zeros(len(x), 10)
        for k, image in enumerate((x * 255).round().to(torch.uint8)):
            label = table.get(image.numpy().tobytes())
            if label is not None:
                out[k, label] = 10.0
        return out
"""


def test_an_unexportable_memoriser_is_held_for_review_and_flagged(pool, tmp_path, data_dir):
    """Made unexportable on purpose to take the unverified path, which used to compute no
    variants: now its own process computes them, mixed with the test images in an order drawn
    from a seed it never sees, and the host scores them."""
    from grader.data import load_dataset
    from grader.metrics import model_metrics

    test = load_dataset("cifar10", "test", data_dir)
    buffer = io.BytesIO()
    torch.save({"images": torch.from_numpy(test.images.copy()),
                "labels": torch.from_numpy(test.labels.astype(np.int64))}, buffer)  # fmt: skip
    model = {"time_limit_s": 120, "robustness": True, "reference": "simplenn",
             "max_capacity_ratio": 2.0, "unverified": "review"}  # fmt: skip
    review = parse_assignment({**LAB, "model": model})
    result = grade(pool, review, tmp_path, "lookup", LOOKUP, weights=buffer.getvalue())
    assert result.status is GradeStatus.OK and not result.verified and result.needs_review
    assert any(f.startswith("needs review") for f in result.flags)
    assert any(f.startswith("capacity: the submission's files hold about") for f in result.flags)
    assert result.variant_seed is not None and len(result.variant_logits) == 17
    metrics = model_metrics(test.labels, result.logits, result.variant_logits,
                            seed=result.variant_seed)  # fmt: skip
    assert metrics.accuracy == 1.0
    assert metrics.likely_memoriser, metrics
    own = parse_assignment({**LAB, "model": {"time_limit_s": 120, "public_models": "refuse"}})
    refused = grade(pool, own, tmp_path, "lookup2", LOOKUP, weights=buffer.getvalue())
    assert_refused(refused, "only a captured graph can be checked")


def test_a_3000_deep_module_tree_is_the_students_error(pool, lab, tmp_path):
    code = (
        "from torch import nn\n"
        "def build_model():\n"
        "    m = nn.Linear(3 * 32 * 32, 10)\n"
        "    for _ in range(3000):\n"
        "        m = nn.Sequential(m)\n"
        "    return nn.Sequential(nn.Flatten(), m)\n"
    )
    result = grade(pool, lab, tmp_path, "deep", code, weights=None, require_weights=False)
    assert_refused(result, "recursed too deeply")


def test_a_deflate_bomb_of_weights_never_reaches_the_host(pool, lab, tmp_path):
    raw = io.BytesIO()
    torch.save({"fc1.weight": torch.zeros(700_000_000 // 4 * 4, dtype=torch.uint8)}, raw)
    source = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for item in source.infolist():
            out.writestr(item.filename, source.read(item.filename))
    assert len(bomb.getvalue()) < 5_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = grade(pool, lab, tmp_path, "bomb", SIMPLENN_CODE, weights=bomb.getvalue())
    assert_refused(result)
    assert "model.pt" in result.message
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 300_000  # KiB: the host never inflated the 700 MB


def test_links_devices_and_fifos_in_the_folder_are_refused_by_name(pool, lab, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the answer key")
    cases = {
        "hardlink": lambda f: os.link(secret, f / "notes.txt"),
        "symlink": lambda f: (f / "notes.txt").symlink_to(secret),
        "fifo": lambda f: os.mkfifo(f / "notes.txt"),
        "device": lambda f: os.mknod(f / "notes.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3)),
    }
    expected = {"hardlink": "hard link", "symlink": "symbolic link", "fifo": "FIFO",
                "device": "device node"}  # fmt: skip
    for name, make in cases.items():
        folder = student_folder(tmp_path, name, SIMPLENN_CODE, weights=ADA_WEIGHTS)
        make(folder)
        result = grade_model(folder, lab, pool=pool)
        assert_refused(result, "notes.txt", expected[name])


def test_a_deep_submission_folder_is_refused(pool, lab, tmp_path):
    folder = student_folder(tmp_path, "nested", SIMPLENN_CODE, weights=ADA_WEIGHTS)
    os.makedirs(folder / "/".join(["d"] * 200))
    assert_refused(grade_model(folder, lab, pool=pool), "nest deeper than")


def test_the_baselines_predictions_are_not_in_the_box(pool, lab, tmp_path):
    repo = Path(__file__).resolve().parents[2]
    code = (f"open({str(repo / 'reference' / 'baselines' / 'simplenn' / 'predictions.csv')!r})\n"
            + SIMPLENN_CODE)  # fmt: skip
    assert_refused(grade(pool, lab, tmp_path, "peeker", code), "FileNotFoundError")
    assert np.load  # the host side still works after every attack
