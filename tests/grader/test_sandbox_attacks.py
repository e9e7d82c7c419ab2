"""The attack battery: hostile model.py files must end with a clear status, the grader unharmed.

Every attack runs in the real sandbox (bubblewrap, setpriv, rlimits, seccomp). The boxes start
together from a thread pool, each on its own slot (uid), so the battery costs about as long as
its slowest attack; each test then checks one attack's outcome. Attacks that act at import time
use the torch-free ``grader.harness:import_task``; model-level attacks use the full model check.
"""

from __future__ import annotations

import os
import pickle
import socket
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from grader.modelgrade import grade_from_result
from grader.sandbox import (
    BASE_UID,
    MAX_LOG_BYTES,
    Limits,
    TaskResult,
    bubblewrap_available,
    run_task,
)
from grader.weights import WeightsError, load_state_dict

IMPORT_TASK = "grader.harness:import_task"
CHECK_TASK = "grader.modelcheck:check_task"
LIGHT = Limits(wall_s=30, memory_mb=1024, cpu_s=10, nproc=16, fsize_mb=64, output_mb=64)
SHORT = Limits(wall_s=6, memory_mb=1024, cpu_s=10, nproc=16, fsize_mb=64)
TORCH = Limits(wall_s=240, memory_mb=4096, cpu_s=240)
SECRET = "s3cret-token-4242"
SPEC_ARGS = {
    "entry": "Net", "input_shape": [3, 32, 32], "num_classes": 10, "rules": [],
    "params_exact": None, "params_max": None, "max_flops": None, "reference": None,
    "batch_size": 64, "require_weights": False,
}  # fmt: skip
SMALL_NET = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return {body}
"""


@dataclass
class Attack:
    code: str
    task: str = IMPORT_TASK
    limits: Limits = LIGHT
    weights: bytes | None = None
    link_to: Path | None = None
    """A host file the submission folder holds a symlink to (``leak``)."""


class Payload:
    """Pickles into a call of ``open(marker, "w")``: proof of code execution when loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_bomb(marker: Path) -> bytes:
    path = marker.with_suffix(".pt")
    torch.save({"fc.weight": Payload(str(marker))}, path)
    data = path.read_bytes()
    path.unlink()
    return data


def _attacks(host: Path, port: int, labels: Path, other_student: Path) -> dict[str, Attack]:
    net = SMALL_NET.format
    return {
        "fork_bomb": Attack("import os\nwhile True:\n    try:\n        os.fork()\n"
                            "    except OSError:\n        pass\n", limits=SHORT),
        "memory_hog": Attack("hog = bytearray(10 * 1024 ** 3)\n"),
        "cpu_loop": Attack("while True:\n    pass\n", limits=Limits(wall_s=30, cpu_s=2,
                                                                  memory_mb=1024)),
        "sleep": Attack("import time\ntime.sleep(10 ** 6)\n", limits=SHORT),
        "big_file_out": Attack("chunk = b'x' * 2 ** 20\nwith open('/box/out/big', 'wb') as f:\n"
                               "    for _ in range(5 * 1024):\n        f.write(chunk)\n"),
        "big_file_tmp": Attack("chunk = b'x' * 2 ** 20\nwith open('/tmp/big', 'wb') as f:\n"
                               "    for _ in range(5 * 1024):\n        f.write(chunk)\n"),
        "network": Attack(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), "
                          "timeout=2)\n"),
        "read_labels": Attack(f"print(open({str(labels)!r}).read())\n"),
        "read_other_student": Attack(f"import os\nprint(os.listdir({str(other_student)!r}))\n"),
        "symlinked_labels": Attack("print(open('leak').read())\n", link_to=labels),
        "read_shadow": Attack("print(open('/etc/shadow').read())\n"),
        "env_secret": Attack("import os\nraise RuntimeError(repr(dict(os.environ)) + "
                             "open('/proc/1/environ').read())\n"),
        "write_outside": Attack(f"open({str(host / 'target.txt')!r}, 'w').write('pwned')\n"),
        "write_system": Attack("open('/usr/lib/pwned.txt', 'w').write('pwned')\n"),
        "huge_stdout": Attack("import sys\nline = 'y' * 1023 + '\\n'\n"
                              "for _ in range(200 * 1024):\n    sys.stdout.write(line)\n"),
        "os_exit": Attack("import os\nos._exit(0)\n"),
        "segfault": Attack("import ctypes\nctypes.string_at(0)\n"),
        "daemon": Attack(textwrap.dedent("""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(10 ** 6)
                os._exit(0)
            """)),
        "syntax_error": Attack("class Net(:\n    pass\n"),
        "missing_package": Attack("import tensorflow_nonexistent_pkg\n"),
        "missing_class": Attack("import torch\nclass Model(torch.nn.Module):\n    pass\n",
                                task=CHECK_TASK, limits=TORCH),
        "wrong_shape": Attack(net(body="self.fc(x.flatten(1))[:, :7]"), task=CHECK_TASK,
                              limits=TORCH),
        "nan_output": Attack(net(body="self.fc(x.flatten(1)) * float('nan')"), task=CHECK_TASK,
                             limits=TORCH),
        "non_tensor": Attack(net(body="self.fc(x.flatten(1)).tolist()"), task=CHECK_TASK,
                             limits=TORCH),
        "pickle_rce": Attack(net(body="self.fc(x.flatten(1))"), task=CHECK_TASK, limits=TORCH,
                             weights=_pickle_bomb(Path("/tmp/pwned-by-pickle"))),
    }  # fmt: skip


def _box_processes(uid: int) -> list[int]:
    """Pids on the host running as ``uid`` (a box's uid: none may outlive its box)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # the process ended while we looked
        uid_line = next((ln for ln in text.splitlines() if ln.startswith("Uid:")), "")
        if str(uid) in uid_line.split()[1:2]:
            pids.append(int(status.parent.name))
    return pids


@dataclass
class Outcome:
    result: TaskResult
    leftover_pids: list[int]


@pytest.fixture(scope="module")
def battery(tmp_path_factory, data_dir):
    """Start every attack at once (one slot each); map attack name -> its outcome future."""
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    host = tmp_path_factory.mktemp("host")
    (host / "target.txt").write_text("original")
    other = tmp_path_factory.mktemp("students") / "bob"
    other.mkdir()
    (other / "predictions.csv").write_text("Id,Category\n0,3\n")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    os.environ["GRADER_SECRET_KEY"] = SECRET
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    attacks = _attacks(host, server.getsockname()[1], data_dir / "cifar10-test-labels.csv", other)
    root = tmp_path_factory.mktemp("attacks")

    def launch(slot: int, name: str, attack: Attack) -> Outcome:
        folder = root / name
        folder.mkdir()
        (folder / "model.py").write_text(attack.code)
        if attack.link_to is not None:
            (folder / "leak").symlink_to(attack.link_to)
        if attack.weights is not None:
            (folder / "model.pt").write_bytes(attack.weights)
        result = run_task(folder, task=attack.task, args=SPEC_ARGS, limits=attack.limits,
                          slot=slot)  # fmt: skip
        return Outcome(result, _box_processes(BASE_UID + slot))

    pool = ThreadPoolExecutor(max_workers=8)
    # torch-importing attacks first: they are the slowest
    order = sorted(attacks.items(), key=lambda kv: kv[1].task != CHECK_TASK)
    futures: dict[str, Future[Outcome]] = {
        name: pool.submit(launch, 10 + i, name, attack) for i, (name, attack) in enumerate(order)
    }
    yield futures, host, server
    pool.shutdown(wait=True)
    server.close()
    os.environ.pop("GRADER_SECRET_KEY", None)
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)


def outcome(battery, name: str) -> Outcome:
    futures, _host, _server = battery
    result = futures[name].result()
    assert result.result.status == "ok" or result.result.message, f"{name}: no message"
    assert result.leftover_pids == [], f"{name}: processes outlived the box"
    return result


def test_fork_bomb_is_stopped_by_the_wall_clock(battery):
    out = outcome(battery, "fork_bomb")
    assert out.result.status == "timeout"
    assert "wall-clock limit of 6 s" in out.result.message


def test_memory_hog_gets_memory_error(battery):
    out = outcome(battery, "memory_hog")
    assert out.result.status == "invalid"
    assert "out of memory" in out.result.message


def test_cpu_loop_is_killed_at_the_cpu_limit(battery):
    out = outcome(battery, "cpu_loop")
    assert out.result.status == "killed"
    assert "CPU limit 2 s" in out.result.message


def test_sleeping_forever_times_out(battery):
    out = outcome(battery, "sleep")
    assert out.result.status == "timeout"
    assert out.result.wall_s < SHORT.wall_s + 10


@pytest.mark.parametrize("name", ["big_file_out", "big_file_tmp"])
def test_five_gigabyte_write_is_refused(battery, name):
    out = outcome(battery, name)
    assert out.result.status == "invalid"
    message = out.result.message
    assert "File too large" in message or "No space left" in message or "over 64 MB" in message


def test_network_connect_to_localhost_fails(battery):
    out = outcome(battery, "network")
    _futures, _host, server = battery
    assert out.result.status == "invalid"
    assert "PermissionError" in out.result.message
    with pytest.raises(TimeoutError):
        server.accept()  # nobody ever reached the listening socket


@pytest.mark.parametrize(
    "name", ["read_labels", "symlinked_labels", "read_other_student", "read_shadow"]
)
def test_files_outside_the_box_cannot_be_read(battery, name):
    out = outcome(battery, name)
    assert out.result.status == "invalid"
    assert "FileNotFoundError" in out.result.message
    assert "Id,Category" not in out.result.log
    assert "root:" not in out.result.log


def test_grader_environment_secrets_are_absent(battery):
    out = outcome(battery, "env_secret")
    assert out.result.status == "invalid"
    assert "importing model.py failed" in out.result.message
    assert "PermissionError" in out.result.message or "HOME" in out.result.message
    assert SECRET not in out.result.message + out.result.log
    assert "GRADER_SECRET_KEY" not in out.result.message + out.result.log


def test_writing_outside_the_box_leaves_host_files_untouched(battery):
    out = outcome(battery, "write_outside")
    _futures, host, _server = battery
    assert out.result.status == "invalid"
    assert (host / "target.txt").read_text() == "original"
    system = outcome(battery, "write_system")
    assert system.result.status == "invalid"
    assert "Read-only file system" in system.result.message
    assert not Path("/usr/lib/pwned.txt").exists()


def test_huge_stdout_is_capped(battery):
    out = outcome(battery, "huge_stdout")
    assert out.result.status == "ok"
    assert len(out.result.log) < MAX_LOG_BYTES + 200
    assert "bytes dropped" in out.result.log


def test_os_exit_is_reported(battery):
    out = outcome(battery, "os_exit")
    assert out.result.status == "invalid"
    assert "exited with code 0 before it reported a result" in out.result.message


def test_segfault_is_reported(battery):
    out = outcome(battery, "segfault")
    assert out.result.status == "killed"
    assert "SIGSEGV" in out.result.message


def test_double_forked_daemon_does_not_outlive_the_box(battery):
    out = outcome(battery, "daemon")  # outcome() asserts no process of the box's uid is left
    assert out.result.status == "ok"
    assert out.result.wall_s < LIGHT.wall_s


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("syntax_error", "model.py line 1: syntax error"),
        ("missing_package", "imports 'tensorflow_nonexistent_pkg'"),
    ],
)
def test_broken_model_py_is_invalid_with_a_reason(battery, name, expected):
    out = outcome(battery, name)
    assert out.result.status == "invalid"
    assert expected in out.result.message


@pytest.mark.parametrize(
    ("name", "check", "expected"),
    [
        ("missing_class", "build", "model.py defines no Net or build_model"),
        ("wrong_shape", "output_shape", "output shape (2, 7)"),
        ("nan_output", "finite", "NaN or Inf"),
        ("non_tensor", "output_shape", "forward returned list, not a tensor"),
        ("pickle_rce", "weights", "pickled Python objects"),
    ],
)
def test_bad_models_fail_the_right_check(battery, name, check, expected):
    out = outcome(battery, name)
    grade = grade_from_result(out.result, sandboxed=True)
    assert grade.status == "invalid", grade.message
    failed = {c.name: c.message for c in grade.checks if not c.passed}
    assert check in failed, grade.checks
    assert expected in failed[check]
    assert not Path("/tmp/pwned-by-pickle").exists()


def test_pickle_payload_never_runs_in_the_grader_either(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    weights = tmp_path / "model.pt"
    weights.write_bytes(_pickle_bomb(marker))
    with pytest.raises(WeightsError, match="pickled Python objects"):
        load_state_dict(weights)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is real: torch refuses it too
        torch.load(weights, weights_only=True)
    assert not marker.exists()
