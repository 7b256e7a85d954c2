"""How many cores this process may really use: the CPUs it may run on, and its cgroup's CPU quota.

``os.cpu_count()`` is the host's count. In a container held to ``--cpus=1`` on an 8-core host
it says 8: the hashing core would start 8 workers that share one CPU's worth of time, and
``HASHING_CPU_PERCENT=50`` would mean "4 cores" of a machine that has one. So the machine the
hashing core and its budget are sized for is the smallest of:

- the CPUs the scheduler lets this process run on (``os.sched_getaffinity``: taskset, cpusets);
- the CPU quota of its cgroup and of every cgroup above it, rounded up to whole cores: cgroup v2's
  ``cpu.max`` (``"150000 100000"`` is 1.5 CPUs, ``"max 100000"`` no limit), or cgroup v1's
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of -1: no limit).

Read from files only (``root`` stands for ``/`` so tests can build a fake one); whatever is
missing or unreadable counts as no limit, and the answer is at least 1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_MOUNT = "sys/fs/cgroup"
# Where distributions mount cgroup v1's cpu controller (alone, or with cpuacct).
CGROUP_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def compute_available_cores(root: Path = Path("/"), affinity: int | None = None) -> int:
    """The cores this process may use (see the module's docstring); ``affinity`` overrides the
    scheduler's CPU count (for tests)."""
    if affinity is None:
        affinity = _affinity_count()
    cores = affinity
    quota = compute_cgroup_cpu_limit(root)
    if quota is not None and quota < cores:
        log.info("CPU quota of this cgroup: %d core(s) of the %d the scheduler offers", quota, cores)
        cores = quota
    return max(1, cores)


def compute_cgroup_cpu_limit(root: Path = Path("/")) -> int | None:
    """The tightest CPU quota on this process's cgroups, in whole cores rounded up; None: no quota."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2: one unified hierarchy
            limits += _v2_limits(root / CGROUP_MOUNT, path)
            limits += _v2_limits(root / CGROUP_MOUNT / "unified", path)  # systemd's hybrid layout
        elif "cpu" in controllers.split(","):
            for mount in CGROUP_V1_CPU_MOUNTS:
                limits += _v1_limits(root / CGROUP_MOUNT / mount, path)
    return min(limits) if limits else None


def _affinity_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder and each one above it, up to the mount itself. Inside a container the
    path may name the host's hierarchy, which is not mounted there: the folders that do not exist
    are skipped, and the mount (the container's own cgroup) still counts."""
    if not mount.is_dir():
        return []
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    folders = [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return [f for f in folders if f.is_dir()]


def _ceil_cores(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def _v2_limits(mount: Path, path: str) -> list[int]:
    limits = []
    for folder in _ancestors(mount, path):
        try:
            quota, _, period = (folder / "cpu.max").read_text().strip().partition(" ")
        except OSError:
            continue
        if quota == "max":
            continue
        try:
            cores = _ceil_cores(int(quota), int(period or "100000"))
        except ValueError:
            log.warning("unreadable cgroup cpu.max in %s: %r", folder, quota + " " + period)
            continue
        if cores is not None:
            limits.append(cores)
    return limits


def _v1_limits(mount: Path, path: str) -> list[int]:
    limits = []
    for folder in _ancestors(mount, path):
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        cores = _ceil_cores(quota, period)
        if cores is not None:
            limits.append(cores)
    return limits
