"""The pre-forked jailed worker: real submissions and real attacks through ONE worker.

Every test runs against the same :class:`grader.zygote.Zygote` (one bubblewrap box that imported
torch once), in file order: each attack is followed by an honest submission whose logits must
match the same model computed in this process, so a child that damaged the worker, left a
process behind or left files for the next child shows up as a failure.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from grader.data import load_dataset
from grader.sandbox import Limits, TaskResult, bubblewrap_available
from grader.zygote import UIDS_PER_SLOT, ZYGOTE_BASE_UID, Zygote

SLOT = 7
SECRET = "zygote-s3cret-9876"
ARGS = {
    "entry": "Net", "input_shape": [3, 32, 32], "num_classes": 10, "rules": [],
    "params_exact": None, "params_max": None, "max_flops": None, "reference": None,
    "batch_size": 256, "require_weights": True,
}  # fmt: skip
LIMITS = Limits(wall_s=60, memory_mb=1024, cpu_s=60, nproc=16, fsize_mb=64, output_mb=64)
QUICK = Limits(wall_s=3, memory_mb=1024, cpu_s=10, nproc=16, fsize_mb=64, output_mb=64)
NET_PY = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
"""


class Net(nn.Module):
    """The same network as ``NET_PY``, to compute the expected logits in this process."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def images(data_dir: Path) -> np.ndarray:
    """The real CIFAR-10 test images (the subset's 1017)."""
    return load_dataset("cifar10", "test", data_dir).images


@pytest.fixture(scope="module")
def zygote(images: np.ndarray):
    """One worker for the whole module; a secret in the host environment must not reach it."""
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    os.environ["GRADER_SECRET_KEY"] = SECRET
    try:
        with Zygote(images=images, slot=SLOT) as worker:
            yield worker
    finally:
        os.environ.pop("GRADER_SECRET_KEY", None)


def _honest(root: Path, name: str, seed: int, images: np.ndarray) -> tuple[Path, np.ndarray]:
    """A submission folder with seeded weights, and the logits it must produce."""
    folder = root / name
    folder.mkdir()
    (folder / "model.py").write_text(NET_PY)
    torch.manual_seed(seed)
    model = Net().eval()
    torch.save(model.state_dict(), folder / "model.pt")
    with torch.no_grad():
        expected = model(torch.from_numpy(images).float().div_(255.0)).numpy()
    return folder, expected


def _attack(root: Path, name: str, code: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "model.py").write_text(textwrap.dedent(code))
    return folder


def _uid_processes(uid: int) -> list[int]:
    """Pids on the host running as ``uid``, zombies (dead, not yet reaped) left out."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue  # the process ended while we looked
        fields = {k: v.split() for k, _, v in (ln.partition(":") for ln in lines)}
        if fields.get("Uid", [])[:1] == [str(uid)] and fields.get("State", [])[:1] != ["Z"]:
            pids.append(int(status.parent.name))
    return pids


def _last_uid(worker: Zygote) -> int:
    return ZYGOTE_BASE_UID + SLOT * UIDS_PER_SLOT + worker._jobs % UIDS_PER_SLOT


def _assert_next_grades(worker: Zygote, tmp_path: Path, images: np.ndarray) -> None:
    """An honest submission after an attack still grades, with the right logits."""
    folder, expected = _honest(tmp_path, "next", 3, images)
    result = worker.run(folder, args=ARGS, limits=LIMITS)
    assert result.status == "ok", result.message + result.log
    np.testing.assert_allclose(result.arrays["logits"], expected, rtol=1e-4, atol=1e-5)


def test_two_submissions_give_their_own_logits(zygote, tmp_path, images):
    for seed in (1, 2):
        folder, expected = _honest(tmp_path, f"student{seed}", seed, images)
        result = zygote.run(folder, args=ARGS, limits=LIMITS)
        assert result.status == "ok", result.message + result.log
        assert result.result["errors"] == []
        assert result.result["total_params"] == sum(p.numel() for p in Net().parameters())
        assert result.arrays["logits"].shape == (len(images), 10)
        np.testing.assert_allclose(result.arrays["logits"], expected, rtol=1e-4, atol=1e-5)


ATTACKS: dict[str, tuple[str, Limits, str, str]] = {
    # name: (model.py, limits, expected status, a phrase of the expected message)
    "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                  "        pass\n", QUICK, "timeout", "wall-clock limit"),
    "memory_hog": ("hog = bytearray(10 * 1024 ** 3)\n", LIMITS, "invalid", "out of memory"),
    "cpu_loop": ("while True:\n    pass\n", Limits(wall_s=30, cpu_s=1, memory_mb=1024),
                 "killed", "CPU limit"),
    "sleep_forever": ("import time\ntime.sleep(10 ** 6)\n", QUICK, "timeout", "wall-clock"),
    "os_exit": ("import os\nos._exit(0)\n", LIMITS, "invalid", "exited with code 0"),
    "segfault": ("import ctypes\nctypes.string_at(0)\n", LIMITS, "killed", "SIGSEGV"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_contained_and_the_next_submission_grades(zygote, tmp_path, images, name):
    code, limits, status, phrase = ATTACKS[name]
    result = zygote.run(_attack(tmp_path, name, code), args=ARGS, limits=limits)
    assert (result.status, phrase in result.message) == (status, True), result.message
    assert _uid_processes(_last_uid(zygote)) == []
    _assert_next_grades(zygote, tmp_path, images)


def _raised(result: TaskResult) -> str:
    """The message of a model.py that reports what it found by raising at import."""
    assert result.status == "invalid", result.message
    return result.message


def test_daemon_is_killed_with_its_child(zygote, tmp_path, images):
    code = """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(10 ** 6)
            os._exit(0)
        time.sleep(0.5)
        """
    zygote.run(_attack(tmp_path, "daemon", code), args=ARGS, limits=LIMITS)
    assert _uid_processes(_last_uid(zygote)) == []
    _assert_next_grades(zygote, tmp_path, images)


def test_child_cannot_read_other_children_nor_write_the_workers_files(zygote, tmp_path, images):
    first, _ = _honest(tmp_path, "first", 1, images)
    (first / "notes.txt").write_text("first student's private notes")
    assert zygote.run(first, args=ARGS, limits=LIMITS).status == "ok"
    code = """
        import glob, os
        found = []
        for path in ("/box/children", "/box/jobs", "/box/children/1", "/box/jobs/1"):
            try:
                found.append(f"listed {path}: {os.listdir(path)}")
            except OSError as exc:
                found.append(f"{path}: {type(exc).__name__}")
        found.append(f"glob: {glob.glob('/box/*/*/sub/notes.txt')}")
        for path in ("/box/in/images.npy", "/box/in/zygote.json", "/box/lib/grader/x.py",
                     "/box/jobs/x", "/box/children/x", "/tmp/x", "/usr/lib/x"):
            try:
                open(path, "a").close()
                found.append(f"WROTE {path}")
            except OSError as exc:
                found.append(f"{path}: {type(exc).__name__}")
        raise RuntimeError(" | ".join(found))
        """
    message = _raised(zygote.run(_attack(tmp_path, "snoop", code), args=ARGS, limits=LIMITS))
    assert "WROTE" not in message and "listed" not in message and "private notes" not in message
    assert "glob: []" in message
    assert message.count("PermissionError") + message.count("OSError") >= 9, message
    _assert_next_grades(zygote, tmp_path, images)


def test_network_environment_and_shadow_are_out_of_reach(zygote, tmp_path, images):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = f"""
        import os, socket
        found = [repr(dict(os.environ))]
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            found.append("CONNECTED")
        except OSError as exc:
            found.append(f"net: {{type(exc).__name__}}")
        try:
            found.append(open("/etc/shadow").read())
        except OSError as exc:
            found.append(f"shadow: {{type(exc).__name__}}")
        raise RuntimeError(" | ".join(found))
        """
    try:
        message = _raised(zygote.run(_attack(tmp_path, "net", code), args=ARGS, limits=LIMITS))
    finally:
        server.close()
    assert "CONNECTED" not in message and "net: PermissionError" in message
    assert "shadow: FileNotFoundError" in message or "shadow: PermissionError" in message
    assert SECRET not in message and "root:" not in message
    _assert_next_grades(zygote, tmp_path, images)


@pytest.mark.slow
def test_same_logits_as_a_fresh_box(zygote, tmp_path, images, data_dir):
    from grader.sandbox import run_task

    folder, _ = _honest(tmp_path, "student", 5, images)
    # a fresh box imports torch under its RLIMIT_AS: it needs more than a forked child adds
    box_limits = Limits(wall_s=240, memory_mb=4096, cpu_s=240)
    boxed = run_task(folder, task="grader.modelcheck:check_task", args=ARGS, limits=box_limits,
                     inputs={"images": images}, slot=SLOT)  # fmt: skip
    forked = zygote.run(folder, args=ARGS, limits=LIMITS)
    assert (boxed.status, forked.status) == ("ok", "ok"), boxed.message + forked.message
    np.testing.assert_array_equal(boxed.arrays["logits"], forked.arrays["logits"])
    assert boxed.result["flops"] == forked.result["flops"]


@pytest.mark.slow
def test_batch_with_pre_forked_workers_grades_like_fresh_boxes(tmp_path, data_dir):
    from grader.assignment import load_assignment
    from grader.batch.run import grade_folder

    examples = Path(__file__).resolve().parents[2] / "submissions" / "simplenn"
    spec = load_assignment("simplenn")
    runs = {
        pre_fork: grade_folder(examples, spec=spec, data_dir=data_dir, jobs=2, progress=False,
                               out_dir=tmp_path / str(pre_fork), pre_fork=pre_fork)
        for pre_fork in (False, True)
    }  # fmt: skip
    fresh, forked = ([(r.student, r.status, r.all_accuracy, r.total_params, r.flops)
                      for r in runs[k].results] for k in (False, True))  # fmt: skip
    assert forked == fresh
    assert any(status == "ok" for _, status, *_ in forked)
