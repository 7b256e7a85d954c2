"""The cores the hashing core is sized for: CPU affinity and the cgroup's CPU quota, from a fake
``/proc`` and ``/sys/fs/cgroup`` (the layouts are the kernel's: Documentation/admin-guide/cgroup-v2.rst,
``cpu.max`` "$MAX $PERIOD"; cgroup v1's CFS bandwidth, Documentation/scheduler/sched-bwc.rst,
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` with -1 for no limit)."""

from __future__ import annotations

import os
from pathlib import Path

import chain.adapters.cpu_quota
import chain.adapters.hashcore
from chain.adapters.cpu_quota import compute_available_cores, compute_cgroup_cpu_limit
from chain.adapters.hashcore import HashingCore

V2 = "0::/system.slice/playground.service\n"
# A hybrid v1 host (this machine's layout): the cpu controller on hierarchy 1, v2 unified below it.
V1 = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/docker/abc\n"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_cgroup_files_is_no_quota_and_the_affinity_counts(tmp_path):
    assert compute_cgroup_cpu_limit(tmp_path) is None
    assert compute_available_cores(tmp_path, affinity=6) == 6


def test_a_v2_quota_of_one_and_a_half_cpus_is_two_cores(tmp_path):
    write(tmp_path, "proc/self/cgroup", V2)
    write(tmp_path, "sys/fs/cgroup/system.slice/playground.service/cpu.max", "150000 100000\n")
    assert compute_cgroup_cpu_limit(tmp_path) == 2
    assert compute_available_cores(tmp_path, affinity=8) == 2
    assert compute_available_cores(tmp_path, affinity=1) == 1  # the tighter of the two


def test_a_v2_max_is_no_limit_but_a_parents_quota_still_holds(tmp_path):
    write(tmp_path, "proc/self/cgroup", V2)
    write(tmp_path, "sys/fs/cgroup/system.slice/playground.service/cpu.max", "max 100000\n")
    assert compute_cgroup_cpu_limit(tmp_path) is None
    write(tmp_path, "sys/fs/cgroup/system.slice/cpu.max", "300000 100000\n")
    assert compute_available_cores(tmp_path, affinity=16) == 3


def test_a_quota_below_one_cpu_still_leaves_one_core(tmp_path):
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "20000 100000\n")  # docker --cpus=0.2
    assert compute_available_cores(tmp_path, affinity=4) == 1


def test_inside_a_container_the_hosts_path_is_not_mounted_and_the_mount_itself_counts(tmp_path):
    # Without a cgroup namespace /proc/self/cgroup names the host's path; the container sees its own
    # cgroup at the mount point.
    write(tmp_path, "proc/self/cgroup", V1)
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "100000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert compute_available_cores(tmp_path, affinity=8) == 1


def test_a_v1_quota_of_minus_one_is_no_limit(tmp_path):
    write(tmp_path, "proc/self/cgroup", V1)
    write(tmp_path, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us", "100000\n")
    assert compute_cgroup_cpu_limit(tmp_path) is None
    assert compute_available_cores(tmp_path, affinity=2) == 2


def test_unreadable_values_count_as_no_limit(tmp_path):
    write(tmp_path, "proc/self/cgroup", V2)
    write(tmp_path, "sys/fs/cgroup/system.slice/playground.service/cpu.max", "lots 100000\n")
    assert compute_cgroup_cpu_limit(tmp_path) is None


def test_this_machine_gives_at_least_one_core_and_no_more_than_the_host_has():
    cores = compute_available_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)


def test_the_hashing_core_is_sized_for_the_quota_not_the_hosts_count(tmp_path, monkeypatch):
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "100000 100000\n")  # docker --cpus=1 on a bigger host
    real = chain.adapters.cpu_quota.compute_available_cores
    monkeypatch.setattr(chain.adapters.hashcore, "compute_available_cores", lambda: real(tmp_path, affinity=8))
    core = HashingCore(cpu_percent=50)  # not started: only its sizing is read
    assert (core.budget.cores, core.budget.workers, core.budget.duty) == (1, 1, (50, 100))
