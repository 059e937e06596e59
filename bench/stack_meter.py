"""What the embedded stack's processes cost, read from /proc: CPU time and memory per role, descendants included.

A role is one process the stack started (a gRPC server, a Celery worker, Triton, Redis, ...) together with
every process below it (Celery prefork children, Triton's python-backend stub). Linux only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hilum.runtime.stack import EmbeddedStack

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Processes the stack starts outside its ManagedProcess children, by their /proc comm: their role.
SERVER_ROLES = {"redis-server": "redis", "tritonserver": "triton"}
KIB_PER_MIB = 1024


@dataclass(frozen=True)
class ProcStat:
    """One process from /proc/<pid>/stat: its parent, and its CPU ticks (user + system, its own plus those of
    children it has reaped, so a prefork child that exits keeps counting in its parent).
    """

    pid: int
    ppid: int
    cpu_ticks: int


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None if it has gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it start past the last ")".
    fields = text[text.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(pid=pid, ppid=int(fields[1]), cpu_ticks=utime + stime + cutime + cstime)


def process_table() -> dict[int, ProcStat]:
    """Every process on the host that can be read now, by pid."""
    table: dict[int, ProcStat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            table[stat.pid] = stat
    return table


def descendants(root: int, table: Mapping[int, ProcStat]) -> list[int]:
    """root and every process below it in table (root first)."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        if pid in table:
            found.append(pid)
            pending.extend(children.get(pid, []))
    return found


def process_name(pid: int) -> str:
    """The process's command name (/proc/<pid>/comm), "" if it has gone."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def own_cpu_ms() -> float:
    """CPU time (user + system, all threads) this process has used, without its children."""
    times = os.times()
    return (times.user + times.system) * 1000


def stack_roots(stack: EmbeddedStack) -> dict[str, int]:
    """The top process of each role of a started stack: its named children ("grpc", "cds", ...)
    and, among this process's other children, Redis and Triton by their command name.
    """
    roots = {child.name: child.pid for child in stack.children if child.pid is not None}
    known = set(roots.values())
    for stat in process_table().values():
        if stat.ppid == os.getpid() and stat.pid not in known and process_name(stat.pid) in SERVER_ROLES:
            roots[SERVER_ROLES[process_name(stat.pid)]] = stat.pid
    return roots


class StackMeter:
    """The processes of each role (a root pid and its descendants) and what they have used so far."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)

    def pids_by_role(self, table: Mapping[int, ProcStat] | None = None) -> dict[str, list[int]]:
        """The live pids of each role now (or in the given process table)."""
        table = process_table() if table is None else table
        return {role: descendants(root, table) for role, root in self.roots.items()}

    def cpu_ms_by_role(self) -> dict[str, float]:
        """CPU milliseconds each role has used since its processes started (reaped children included)."""
        table = process_table()
        return {role: sum(table[pid].cpu_ticks for pid in pids) * 1000 / CLOCK_TICKS_PER_S
                for role, pids in self.pids_by_role(table).items()}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU ms per role between two cpu_ms_by_role readings (a role missing before counts from zero)."""
    return {role: after[role] - before.get(role, 0.0) for role in after}


def read_memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of the process in KiB, or None if it has gone (or is a zombie without memory)."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    values = {name: int(rest.split()[0]) for name, _, rest in (line.partition(":") for line in lines)
              if name in ("VmRSS", "VmHWM")}
    if "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def read_pss_kib(pid: int) -> int | None:
    """The process's proportional set size in KiB (each page it shares counted as its share), or None if it has gone.

    The summed VmRSS of several processes counts a page they share (the Python runtime and libraries, and what a
    prefork worker's children still share with their parent) once per process; the summed Pss counts it once.
    """
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        if name == "Pss":
            return int(rest.split()[0])
    return None


class RssSampler:
    """Samples the summed VmRSS of every stack process every interval_s in a thread; keeps the peak sum and
    each process's VmHWM (its own peak) by role. The process tree is re-read every tree_refresh_s. The summed Pss is
    sampled every pss_interval_s (reading it walks each process's page tables, which costs the machine more).
    """

    def __init__(self, meter: StackMeter, interval_s: float = 0.2, tree_refresh_s: float = 1.0,
                 pss_interval_s: float = 1.0) -> None:
        self.meter = meter
        self.interval_s = interval_s
        self.tree_refresh_s = tree_refresh_s
        self.pss_interval_s = pss_interval_s
        self.peak_total_kib = 0
        self.peak_pss_kib = 0
        self._hwm_kib: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (after one last sample) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    @property
    def peak_total_mib(self) -> float:
        """The highest summed VmRSS of the whole stack seen in a sample."""
        return self.peak_total_kib / KIB_PER_MIB

    @property
    def peak_pss_mib(self) -> float:
        """The highest summed Pss of the whole stack seen in a sample (fewer samples than VmRSS)."""
        return self.peak_pss_kib / KIB_PER_MIB

    def peak_by_role_mib(self) -> dict[str, float]:
        """Per role, the sum of its processes' VmHWM (each process's own peak, whenever it was)."""
        peaks = dict.fromkeys(self.meter.roots, 0.0)
        for (role, _), kib in self._hwm_kib.items():
            peaks[role] += kib / KIB_PER_MIB
        return peaks

    def _run(self) -> None:
        pids: dict[str, list[int]] = {}
        refreshed = pss_read = 0.0
        while True:
            if time.monotonic() - refreshed >= self.tree_refresh_s:
                pids, refreshed = self.meter.pids_by_role(), time.monotonic()
            self._sample(pids)
            if time.monotonic() - pss_read >= self.pss_interval_s:
                self._sample_pss(pids)
                pss_read = time.monotonic()
            if self._stop.wait(self.interval_s):
                self._sample(self.meter.pids_by_role())
                return

    def _sample_pss(self, pids: Mapping[str, Iterable[int]]) -> None:
        total = sum(pss for role_pids in pids.values() for pid in role_pids if (pss := read_pss_kib(pid)) is not None)
        self.peak_pss_kib = max(self.peak_pss_kib, total)

    def _sample(self, pids: Mapping[str, Iterable[int]]) -> None:
        total = 0
        for role, role_pids in pids.items():
            for pid in role_pids:
                memory = read_memory_kib(pid)
                if memory is not None:
                    total += memory[0]
                    key = (role, pid)
                    self._hwm_kib[key] = max(self._hwm_kib.get(key, 0), memory[1])
        self.peak_total_kib = max(self.peak_total_kib, total)
