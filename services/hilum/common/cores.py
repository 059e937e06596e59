"""How many CPUs this process may use: what sizes its pools of image work, in a pod as on a host.

os.cpu_count() counts the host's CPUs. In a Kubernetes pod with a CPU limit (a cgroup CPU quota) on a 32-core node it
says 32 where the pod may use one: pools sized by it would hold 32 decoded images at once in a pod whose memory limit
was set for a few. usable_cores() takes the CPUs the process may run on (its affinity) and bounds them by the quota,
rounded up (a limit of 1.5 CPUs runs two threads at once, each part of the time).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use: its affinity, bounded by its cgroup's CPU quota when it has one; at least 1."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in CPUs (quota / period), or None when it has none or none can be read: cgroup v2
    (cpu.max, "max 100000" or "150000 100000"), else cgroup v1 (cpu/cpu.cfs_quota_us, -1 for none, and
    cpu/cpu.cfs_period_us)."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if quota_us <= 0 or period_us <= 0:  # v1's -1: no quota
        return None
    return quota_us / period_us
