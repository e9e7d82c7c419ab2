"""The one GPU a ``--queue gpu`` worker hands to its sandbox.

A box sees exactly one GPU: ``--dev-bind`` (not ``--bind``: device nodes) of the control devices
``/dev/nvidiactl``, ``/dev/nvidia-uvm``, ``/dev/nvidia-uvm-tools`` and the one ``/dev/nvidiaN``
assigned, and the host's driver libraries (``libcuda``, the PTX JIT, NVVM, NVML) read-only; the
CUDA runtime itself comes with the PyPI torch wheel. ``/dev/nvidia-uvm`` is created by the setuid
``nvidia-modprobe`` on first use, which cannot run under ``no_new_privs`` inside a box, so a worker
refuses to start until it exists. There is no memory isolation between jobs on one GPU without
MIG: a worker runs one job at a time per GPU.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
DRIVER_LIBRARIES = (
    "libcuda.so*",
    "libnvidia-ptxjitcompiler.so*",
    "libnvidia-nvvm.so*",
    "libnvidia-ml.so*",
)
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/nvidia/lib64",
)


class GpuUnavailable(RuntimeError):
    """This machine cannot give a box a GPU; the message says what is missing and what to do."""


@dataclass(frozen=True)
class GpuDevice:
    """One GPU and everything a box needs to use it."""

    index: int
    devices: tuple[str, ...]
    """Device nodes to ``--dev-bind``: the control devices and ``nvidia<index>``."""
    libraries: tuple[str, ...]
    """Driver libraries to bind read-only."""

    def bwrap_args(self) -> list[str]:
        """The bubblewrap arguments that expose this GPU, and no other, to a box.

        They go after the box's ``--dev /dev`` (bwrap applies mounts in order); the box's
        environment then sets ``CUDA_VISIBLE_DEVICES=0``: inside the box the one GPU is device 0.
        """
        args: list[str] = []
        for device in self.devices:
            args += ["--dev-bind", device, device]
        for library in self.libraries:
            args += ["--ro-bind", library, library]
        return args


def find_gpu(
    index: int = 0, *, dev: Path = Path("/dev"), library_dirs: Sequence[str] = LIBRARY_DIRS
) -> GpuDevice:
    """The GPU ``index`` of this machine; :class:`GpuUnavailable` says why it cannot be used."""
    dev = Path(dev)
    node = dev / f"nvidia{index}"
    if not (dev / "nvidia-uvm").exists():
        raise GpuUnavailable(
            f"{dev / 'nvidia-uvm'} is missing, so a sandboxed job cannot use the GPU (the box "
            "cannot create it). Load the driver's UVM module on the host first: run "
            "`nvidia-modprobe -u -c=0` (or any CUDA program once) as root, then start the worker "
            "again; or start this worker with --queue cpu"
        )
    missing = [str(dev / name) for name in ("nvidiactl",) if not (dev / name).exists()]
    if not node.exists():
        present = sorted(p.name for p in dev.glob("nvidia[0-9]*"))
        missing.append(f"{node} (this machine has: {', '.join(present) or 'no GPU device'})")
    if missing:
        raise GpuUnavailable(
            f"GPU {index} cannot be used: missing {', '.join(missing)}; pick another --gpu "
            "or check the NVIDIA driver (nvidia-smi)"
        )
    devices = [str(dev / name) for name in CONTROL_DEVICES if (dev / name).exists()]
    devices.append(str(node))
    libraries: list[str] = []
    for directory in library_dirs:
        for pattern in DRIVER_LIBRARIES:
            for path in sorted(glob.glob(os.path.join(directory, pattern))):
                if path not in libraries:
                    libraries.append(path)
    if not any(os.path.basename(p).startswith("libcuda.so") for p in libraries):
        raise GpuUnavailable(
            f"no libcuda.so in {', '.join(library_dirs)}: install the NVIDIA driver's user-space "
            "libraries on this machine"
        )
    return GpuDevice(index=index, devices=tuple(devices), libraries=tuple(libraries))
