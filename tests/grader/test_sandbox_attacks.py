"""The attack battery: hostile submissions end with a clear status, the grader and host unharmed.

Every attack runs in a real box (bubblewrap, a fresh uid per job, rlimits, seccomp) through ONE
shared pool of two warm boxes, the way ``grader check`` and the leaderboard worker run them:
after the battery an honest job must still work in the same boxes, and no process of any job's
uid may be left. The attacks act when ``model.py`` is imported (the lightest trusted task).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from grader.sandbox.inside.supervisor import LOG_HALF
from grader.sandbox.jail import bubblewrap_available
from grader.sandbox.pool import BoxPool
from grader.sandbox.protocol import Limits
from grader.sandbox.tasks import TaskResult, run_task
from grader.sandbox.uids import RANGE_SIZE, UidRange, process_uids

IMPORT_TASK = "grader.sandbox.inside.tasks:import_task"
LIGHT = Limits(wall_s=30, memory_mb=1024, cpu_s=10, nproc=16, fsize_mb=64, output_mb=64)
SHORT = Limits(wall_s=6, memory_mb=1024, cpu_s=10, nproc=16, fsize_mb=64)
SECRET = "s3cret-token-4242"
OUT_DIR = "import sys, pathlib\nOUT = pathlib.Path(sys.path[-1]).parent / 'out'\n"


def _attacks(host: Path, port: int, labels: Path, other: Path) -> dict[str, tuple[str, Limits]]:
    return {
        "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n"
                      "    except OSError:\n        pass\n", SHORT),
        "memory_hog": ("hog = bytearray(10 * 1024 ** 3)\n", LIGHT),
        "cpu_loop": ("while True:\n    pass\n", Limits(wall_s=30, cpu_s=2, memory_mb=1024)),
        "sleep": ("import time\ntime.sleep(10 ** 6)\n", SHORT),
        "big_file_out": ("import sys, pathlib\nout = pathlib.Path(sys.path[-1]).parent / 'out'\n"
                         "chunk = b'x' * 2 ** 20\nwith open(out / 'big.npy', 'wb') as f:\n"
                         "    for _ in range(5 * 1024):\n        f.write(chunk)\n", LIGHT),
        "big_file_tmp": ("chunk = b'x' * 2 ** 20\nimport os\n"
                         "with open(os.environ['TMPDIR'] + '/big', 'wb') as f:\n"
                         "    for _ in range(5 * 1024):\n        f.write(chunk)\n", LIGHT),
        "network": ("import socket\n"
                    f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n", LIGHT),
        "raw_socket": ("import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n", LIGHT),
        "io_uring": ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                     "params = ctypes.create_string_buffer(120)\n"
                     "fd = libc.syscall(425, 8, params)\n"
                     "raise RuntimeError(f'io_uring_setup={fd} errno={ctypes.get_errno()}')\n",
                     LIGHT),
        "new_user_namespace": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                               "rc = libc.unshare(0x10000000)\n"
                               "errno = ctypes.get_errno()\n"
                               "raise PermissionError(f'unshare={rc} errno={errno}')\n",
                               LIGHT),
        "read_labels": (f"print(open({str(labels)!r}).read())\n", LIGHT),
        "read_other_student": (f"import os\nprint(os.listdir({str(other)!r}))\n", LIGHT),
        "read_shadow": ("print(open('/etc/shadow').read())\n", LIGHT),
        "reference_package": ("import reference.models\n", LIGHT),
        "env_secret": ("import os\nraise RuntimeError(repr(dict(os.environ)) + "
                       "open('/proc/1/environ').read())\n", LIGHT),
        "write_outside": (f"open({str(host / 'target.txt')!r}, 'w').write('pwned')\n", LIGHT),
        "write_system": ("open('/usr/lib/pwned.txt', 'w').write('pwned')\n", LIGHT),
        "huge_stdout": ("import sys\nline = 'y' * 1023 + '\\n'\n"
                        "for _ in range(300 * 1024):\n    sys.stdout.write(line)\n", LIGHT),
        "os_exit": ("import os\nos._exit(0)\n", LIGHT),
        "segfault": ("import ctypes\nctypes.string_at(0)\n", LIGHT),
        "daemon": (textwrap.dedent("""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(10 ** 6)
                os._exit(0)
            """), LIGHT),
        "deep_tree": (textwrap.dedent("""
            import os
            os.chdir(os.environ['TMPDIR'])
            for _ in range(3000):
                os.mkdir('d')
                os.chdir('d')
            """), LIGHT),
        "deep_tree_out": (OUT_DIR + textwrap.dedent("""
            import os
            os.chdir(OUT)
            for _ in range(3000):
                os.mkdir('d')
                os.chdir('d')
            """), LIGHT),
        "syntax_error": ("class Net(:\n    pass\n", LIGHT),
        "missing_package": ("import tensorflow_nonexistent_pkg\n", LIGHT),
    }  # fmt: skip


def _uid_processes(first: int, last: int) -> list[tuple[int, int]]:
    """(pid, uid) of every process on the machine whose uid is in [first, last)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # the process ended while we looked
        line = next((ln for ln in text.splitlines() if ln.startswith("Uid:")), "Uid: -1")
        uid = int(line.split()[1])
        if first <= uid < last:
            found.append((int(status.parent.name), uid))
    return found


@pytest.fixture(scope="module")
def battery(tmp_path_factory, data_dir):
    """Run every attack through one pool of two boxes; map attack name -> its result future."""
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
    attacks = _attacks(host, server.getsockname()[1], data_dir / "cifar10-test-labels.csv", other)
    root = tmp_path_factory.mktemp("attacks")
    pool = BoxPool(size=2)

    def launch(name: str, code: str, limits: Limits) -> TaskResult:
        folder = root / name
        folder.mkdir()
        (folder / "model.py").write_text(code)
        return run_task(folder, task=IMPORT_TASK, limits=limits, pool=pool)

    threads = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future[TaskResult]] = {
        name: threads.submit(launch, name, code, limits) for name, (code, limits) in attacks.items()
    }
    yield futures, host, server, pool, root
    threads.shutdown(wait=True)
    pool.close()
    server.close()
    os.environ.pop("GRADER_SECRET_KEY", None)


def outcome(battery, name: str) -> TaskResult:
    futures = battery[0]
    result = futures[name].result()
    assert result.status == "ok" or result.message, f"{name}: no message"
    return result


def test_fork_bomb_is_stopped_by_the_wall_clock(battery):
    out = outcome(battery, "fork_bomb")
    assert out.status == "invalid" and out.timed_out
    assert "wall-clock limit of 6 s" in out.message


def test_memory_hog_gets_memory_error(battery):
    out = outcome(battery, "memory_hog")
    assert out.status == "invalid"
    assert "out of memory" in out.message


def test_cpu_loop_is_killed_at_the_cpu_limit(battery):
    out = outcome(battery, "cpu_loop")
    assert out.status == "invalid" and out.killed
    assert "CPU limit 2 s" in out.message


def test_sleeping_forever_times_out(battery):
    out = outcome(battery, "sleep")
    assert out.status == "invalid" and out.timed_out
    assert out.wall_s < SHORT.wall_s + 10


@pytest.mark.parametrize("name", ["big_file_out", "big_file_tmp"])
def test_five_gigabyte_write_is_refused(battery, name):
    out = outcome(battery, name)
    assert out.status == "invalid"
    assert out.arrays == {}
    message = out.message + out.log
    assert "File too large" in message or "No space left" in message or "SIGXFSZ" in message


@pytest.mark.parametrize("name", ["network", "raw_socket"])
def test_sockets_other_than_unix_ones_are_refused(battery, name):
    out = outcome(battery, name)
    assert out.status == "invalid"
    assert "PermissionError" in out.message
    with pytest.raises(TimeoutError):
        battery[2].accept()  # nobody ever reached the listening socket


def test_io_uring_is_denied(battery):
    out = outcome(battery, "io_uring")
    assert out.status == "invalid"
    assert "io_uring_setup=-1 errno=1" in out.message  # EPERM from the seccomp filter


def test_new_namespaces_are_denied(battery):
    out = outcome(battery, "new_user_namespace")
    assert out.status == "invalid"
    assert "unshare=-1 errno=1" in out.message


@pytest.mark.parametrize(
    "name", ["read_labels", "read_other_student", "read_shadow", "reference_package"]
)
def test_nothing_outside_the_box_can_be_read(battery, name):
    out = outcome(battery, name)
    assert out.status == "invalid"
    assert "FileNotFoundError" in out.message or "imports 'reference'" in out.message
    assert "Id,Category" not in out.log
    assert "root:" not in out.log


def test_grader_environment_secrets_are_absent(battery):
    out = outcome(battery, "env_secret")
    assert out.status == "invalid"
    assert "importing model.py failed" in out.message
    assert SECRET not in out.message + out.log
    assert "GRADER_SECRET_KEY" not in out.message + out.log


def test_writing_outside_the_box_leaves_host_files_untouched(battery):
    out = outcome(battery, "write_outside")
    assert out.status == "invalid"
    assert (battery[1] / "target.txt").read_text() == "original"
    system = outcome(battery, "write_system")
    assert system.status == "invalid"
    assert "Read-only file system" in system.message
    assert not Path("/usr/lib/pwned.txt").exists()


def test_a_model_that_prints_forever_is_capped_not_killed(battery):
    out = outcome(battery, "huge_stdout")
    assert out.status == "ok", out.message
    assert len(out.log) < 2 * LOG_HALF + 200
    assert "bytes of output dropped" in out.log


def test_os_exit_is_reported(battery):
    out = outcome(battery, "os_exit")
    assert out.status == "invalid"
    assert "exited (code 0) before it reported a result" in out.message


def test_segfault_is_reported(battery):
    out = outcome(battery, "segfault")
    assert out.status == "invalid" and out.killed
    assert "SIGSEGV" in out.message


def test_double_forked_daemon_does_not_outlive_its_job(battery):
    out = outcome(battery, "daemon")
    assert out.status == "ok"
    assert out.wall_s < LIGHT.wall_s


@pytest.mark.parametrize("name", ["deep_tree", "deep_tree_out"])
def test_a_3000_deep_folder_tree_is_cleaned_up(battery, name):
    out = outcome(battery, name)
    assert out.status == "ok", out.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("syntax_error", "model.py line 1: syntax error"),
        ("missing_package", "imports 'tensorflow_nonexistent_pkg'"),
    ],
)
def test_broken_model_py_is_invalid_with_a_reason(battery, name, expected):
    out = outcome(battery, name)
    assert out.status == "invalid"
    assert expected in out.message


def test_after_the_battery_the_boxes_still_grade_and_no_job_process_is_left(battery):
    futures, _host, _server, pool, root = battery
    for future in futures.values():
        future.result()
    honest = root / "honest"
    honest.mkdir()
    (honest / "model.py").write_text("import numpy\nVALUE = 42\n")
    for _ in range(2):  # both boxes of the pool
        result = run_task(honest, task=IMPORT_TASK, limits=LIGHT, pool=pool)
        assert result.status == "ok", result.message + result.log
        assert result.result == {"imported": True}
    ours = process_uids()  # other graders on this machine use other ranges
    assert _uid_processes(ours.first, ours.first + RANGE_SIZE) == []


def test_two_grader_processes_hold_different_uid_ranges(tmp_path):
    lock_dir = tmp_path / "locks"
    mine = UidRange(lock_dir)
    script = (
        "import sys; from pathlib import Path; from grader.sandbox.uids import UidRange; "
        f"r = UidRange(Path({str(lock_dir)!r})); print(r.index, r.take())"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, timeout=60)  # fmt: skip
    index, uid = map(int, other.stdout.split())
    assert index != mine.index
    assert uid not in mine
    first, second = mine.take(), mine.take()
    assert first != second and first in mine and second in mine
    mine.release(first)


def test_a_box_that_does_not_start_is_the_graders_error_not_a_crash(tmp_path):
    from grader.assignment import parse_assignment
    from grader.models.pipeline import grade_model
    from grader.sandbox.pool import BoxWorker

    if not bubblewrap_available():
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "model.py").write_text("VALUE = 1\n")
    worker = BoxWorker(startup_s=0.001)  # closed by its own failed start
    job = worker.run(IMPORT_TASK, files={"model.py": folder / "model.py"}, limits=LIGHT,
                     out=tmp_path / "out")  # fmt: skip
    assert job.error.startswith("the box did not start")
    spec = parse_assignment({"name": "lab", "dataset": "cifar10", "model": {}})

    class Slow:  # a pool whose one box never gets ready in time
        def worker(self):
            import contextlib

            return contextlib.nullcontext(BoxWorker(startup_s=0.001))

    result = grade_model(folder, spec, pool=Slow(), require_weights=False)
    assert result.status == "error" and "the box did not start" in result.message
