"""The CPUs a process may use: its affinity, bounded by a cgroup CPU quota (a pod's CPU limit), read from cgroup v2
or v1 files; no quota, or files that cannot be read, leave the affinity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hilum.common.cores import cpu_quota, usable_cores


def _v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def _v1(root: Path, quota: str, period: str) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period + "\n")
    return root


@pytest.mark.parametrize(("cpu_max", "quota"), [
    ("max 100000", None), ("150000 100000", 1.5), ("50000 100000", 0.5), ("400000 100000", 4.0), ("0 100000", None),
    ("garbage", None), ("", None),
])
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, quota: float | None) -> None:
    assert cpu_quota(_v2(tmp_path, cpu_max)) == quota


@pytest.mark.parametrize(("quota_us", "period_us", "quota"), [
    ("-1", "100000", None), ("200000", "100000", 2.0), ("25000", "100000", 0.25), ("100000", "0", None),
])
def test_cgroup_v1_cfs_files(tmp_path: Path, quota_us: str, period_us: str, quota: float | None) -> None:
    assert cpu_quota(_v1(tmp_path, quota_us, period_us)) == quota


def test_no_cgroup_files_is_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path) is None
    assert usable_cores(tmp_path) == len(os.sched_getaffinity(0))


def test_a_quota_bounds_the_cores_rounded_up_and_never_below_one(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(_v2(tmp_path / "a", "50000 100000")) == 1  # half a CPU still runs one thread
    assert usable_cores(_v2(tmp_path / "b", "150000 100000")) == min(affinity, 2)
    assert usable_cores(_v2(tmp_path / "c", f"{(affinity + 8) * 100000} 100000")) == affinity  # more than it may run on
    assert usable_cores(_v2(tmp_path / "d", "max 100000")) == affinity
