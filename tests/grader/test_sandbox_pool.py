"""How many boxes a batch starts: one per core the process may use, within a cgroup's quota."""

from __future__ import annotations

import os

from grader.sandbox.pool import machine_cores


def test_one_box_per_core_within_the_cgroup_quota(tmp_path):
    cores = len(os.sched_getaffinity(0))
    assert machine_cores(tmp_path) == cores  # no cgroup files: the affinity decides
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert machine_cores(tmp_path) == cores  # no limit
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert machine_cores(tmp_path) == 1  # 1.5 cores allowed: one whole core
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert machine_cores(tmp_path) == 1  # never fewer than one box
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert machine_cores(tmp_path) == cores
