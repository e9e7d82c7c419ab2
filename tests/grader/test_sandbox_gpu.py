"""The one GPU a ``--queue gpu`` worker gives its boxes: the bubblewrap arguments, and a clear
refusal on a machine where the box could not use it (this one: no NVIDIA GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.sandbox.gpu import GpuUnavailable, find_gpu


@pytest.fixture
def fake_machine(tmp_path: Path):
    """A /dev with two GPUs and a library folder with the driver's libraries (plain files)."""
    dev, lib = tmp_path / "dev", tmp_path / "lib"
    dev.mkdir()
    lib.mkdir()
    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1"):
        (dev / name).touch()
    for name in (
        "libcuda.so.1",
        "libcuda.so.550.54",
        "libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1",
        "libnvidia-nvvm.so.4",
        "libGL.so.1",
    ):
        (lib / name).touch()  # fmt: skip
    return dev, lib


def test_exactly_one_gpu_is_bound_into_the_box(fake_machine):
    dev, lib = fake_machine
    gpu = find_gpu(1, dev=dev, library_dirs=[str(lib)])
    args = gpu.bwrap_args()
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--dev-bind"]
    assert binds == [str(dev / n) for n in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                                            "nvidia1")]  # fmt: skip
    assert str(dev / "nvidia0") not in args  # the other GPU stays out
    libraries = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    assert {Path(p).name for p in libraries} == {
        "libcuda.so.1", "libcuda.so.550.54", "libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1", "libnvidia-nvvm.so.4",
    }  # fmt: skip
    assert args[-3:] == ["--setenv", "CUDA_VISIBLE_DEVICES", "0"]
    assert all(args[i + 1] == args[i + 2] for i, a in enumerate(args) if a.endswith("-bind"))


def test_missing_uvm_device_is_refused_with_what_to_do(fake_machine):
    dev, lib = fake_machine
    (dev / "nvidia-uvm").unlink()
    with pytest.raises(GpuUnavailable, match=r"nvidia-uvm is missing.*nvidia-modprobe -u -c=0"):
        find_gpu(0, dev=dev, library_dirs=[str(lib)])


def test_other_gaps_are_named(fake_machine):
    dev, lib = fake_machine
    with pytest.raises(GpuUnavailable, match=r"nvidia7 \(this machine has: nvidia0, nvidia1\)"):
        find_gpu(7, dev=dev, library_dirs=[str(lib)])
    (lib / "libcuda.so.1").unlink()
    (lib / "libcuda.so.550.54").unlink()
    with pytest.raises(GpuUnavailable, match="no libcuda.so"):
        find_gpu(0, dev=dev, library_dirs=[str(lib)])


def test_a_gpu_worker_refuses_to_start_without_the_uvm_device():
    result = CliRunner().invoke(
        main,
        ["worker", "--queue", "gpu", "--server", "http://127.0.0.1:9", "--token", "t",
         "--broker", "redis://127.0.0.1:9/0"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    if Path("/dev/nvidia-uvm").exists():  # a GPU machine: past the check, the server is away
        assert "cannot reach http://127.0.0.1:9" in result.output
    else:
        assert "cannot serve the gpu queue" in result.output and "/dev/nvidia-uvm" in result.output
