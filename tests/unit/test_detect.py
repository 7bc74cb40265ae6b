"""describe_node and detect_capacity, on this machine and on trees of its own
(grainlike/worker/_detect.py)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import psutil
import pytest

from grainlike import GPU, ConfigError, Cores, Disk, Memory, ResourceError, WTime, parse_resources
from grainlike.worker import Headroom, NodeInfo, describe_node, detect_capacity
from grainlike.worker._cgroup import cgroup_memory_limit
from grainlike.worker._detect import overridden_kinds

from .test_detect_cgroup import V2_MOUNT, make_proc, write_limit
from .test_detect_nvml import A100, H100, FakeNVML, nvidia_driver_present
from .test_detect_topology import make_sysfs

#: No Slurm, so that the tests see the same whether or not they run inside a job.
NO_SLURM: dict[str, str] = {}


def affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def expected_memory_kib() -> int:
    physical = psutil.virtual_memory().total // 1024
    cgroup = cgroup_memory_limit()
    limit = physical if cgroup is None else min(physical, cgroup.limit_bytes // 1024)
    return Headroom().usable(limit)


def test_this_machine_offers_its_affinity_memory_and_unlimited_walltime() -> None:
    capacity = detect_capacity(environ=NO_SLURM)
    assert capacity.c == affinity()
    assert capacity[Memory].kib == expected_memory_kib()
    if not nvidia_driver_present():
        assert capacity.get(GPU) is None
    assert capacity[WTime] == WTime(T=math.inf, countdown=True)
    assert str(capacity) == str(parse_resources(str(capacity), capacity=True))


def test_the_description_says_where_each_part_came_from() -> None:
    info = describe_node(environ=NO_SLURM)
    assert info.cores is not None and info.cores.ids == tuple(affinity())
    assert info.memory is not None
    assert info.memory.physical_kib == psutil.virtual_memory().total // 1024
    assert info.memory.source in ("physical", "cgroup")
    assert info.gpus is not None
    assert info.gpus.source == ("nvml" if nvidia_driver_present() else "none")
    assert info.walltime is not None and info.walltime.detail == "not inside a Slurm job"
    assert info.notes == ()


def test_overrides_replace_or_remove_kinds_per_kind() -> None:
    capacity = detect_capacity("cores:1,gpu:0,license:2", environ=NO_SLURM)
    assert capacity.c == [0]
    assert capacity.get(GPU) is None
    assert capacity["license"].stat() == {"license": (2.0, 2.0)}
    assert capacity[Memory].kib == expected_memory_kib()
    assert detect_capacity({"mem": "2G", "wtime": 0}, environ=NO_SLURM).get(WTime) is None


def test_overridden_kinds_are_not_detected_at_all() -> None:
    nvml = FakeNVML([A100])
    squeue = ("/nonexistent/squeue",)
    environ = {"SLURM_JOB_ID": "8", "SLURM_MEM_PER_NODE": "bogus"}
    capacity = detect_capacity("gpu:1,wtime:2h,mem:1G", environ=environ, nvml=nvml, squeue=squeue)
    assert nvml.calls == []  # NVML was never started
    assert capacity[WTime].T == 7200.0  # squeue, which does not exist, was never asked
    assert capacity[Memory] == Memory(1)  # the malformed Slurm memory was never read
    assert capacity[GPU] == GPU(1)


def test_overridden_kinds_name_what_an_override_replaces_or_removes() -> None:
    assert overridden_kinds(None) == set()
    assert overridden_kinds("gpu:0,mem:4G,license:2") == {GPU, Memory}
    assert overridden_kinds("disk:0") == {Disk}
    assert overridden_kinds({"cores": [0, 1], "walltime": "1h"}) == {Cores, WTime}


def test_a_malformed_override_fails_before_anything_is_detected() -> None:
    nvml = FakeNVML([A100])
    with pytest.raises(ResourceError, match="cores"):
        detect_capacity("cores:many", nvml=nvml, environ=NO_SLURM)
    assert nvml.calls == []


def test_gpus_come_from_nvml_narrowed_by_cuda_visible_devices() -> None:
    nvml = FakeNVML([A100, H100, A100])
    capacity = detect_capacity(environ={"CUDA_VISIBLE_DEVICES": "2,0"}, nvml=nvml)
    assert capacity.gpus == [0, 2]
    info = describe_node(environ={}, nvml=FakeNVML([A100, H100]))
    assert info.gpus is not None
    assert [(d.index, d.name) for d in info.gpus.devices] == [
        (0, "NVIDIA A100-SXM4-40GB"),
        (1, "NVIDIA H100 80GB HBM3"),
    ]


def test_inside_a_slurm_job_memory_and_walltime_come_from_the_job() -> None:
    environ = {
        "SLURM_JOB_ID": "12",
        "SLURM_MEM_PER_NODE": "300",
        "SLURM_JOB_END_TIME": str(int(time.time()) + 3600),
    }
    info = describe_node(environ=environ)
    assert info.memory is not None
    assert (info.memory.source, info.memory.slurm_kib) == ("slurm", 300 * 1024)
    assert info.memory.capacity() == Memory("236M")  # less the 64 MiB minimum headroom
    assert info.walltime is not None
    assert info.walltime.source == "slurm"
    assert 3590 <= info.walltime.seconds <= 3600


def test_a_slurm_job_that_does_not_bind_its_cpus_is_noted() -> None:
    cpus = affinity()
    environ = {"SLURM_JOB_ID": "3", "SLURM_CPUS_ON_NODE": "1", "SLURM_MEM_PER_CPU": "100"}
    info = describe_node(environ=environ)
    if len(cpus) > 1:
        assert len(info.notes) == 1
        assert info.notes[0].startswith(
            f"Slurm job 3 holds 1 CPU(s) here but the process may run on {len(cpus)}"
        )
    else:
        assert info.notes == ()


def test_a_slurm_job_that_does_not_say_its_memory_is_noted() -> None:
    info = describe_node(environ={"SLURM_JOB_ID": "4"}, skip={Cores, GPU, WTime})
    assert info.memory is not None
    if info.memory.source == "physical":
        assert len(info.notes) == 1
        assert info.notes[0].startswith("Slurm job 4 does not say its memory")
    else:
        assert info.notes == ()  # a cgroup limits it, as Slurm with task/cgroup does
    assert describe_node(environ={}, skip={Cores, GPU, WTime}).notes == ()


def test_a_malformed_slurm_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="SLURM_MEM_PER_NODE='lots'"):
        detect_capacity(environ={"SLURM_JOB_ID": "1", "SLURM_MEM_PER_NODE": "lots"})


def test_sysfs_groups_and_the_cgroup_limit_are_read_under_root(tmp_path: Path) -> None:
    cpus = affinity()
    half = len(cpus) // 2 or 1
    nodes = {0: ",".join(map(str, cpus[:half]))}
    if cpus[half:]:
        nodes[1] = ",".join(map(str, cpus[half:]))
    make_sysfs(tmp_path, nodes=nodes)
    make_proc(tmp_path, cgroup="0::/job\n", mountinfo=V2_MOUNT)
    limit = write_limit(tmp_path, "/sys/fs/cgroup/job", "memory.max", str(1 << 30))
    info = describe_node(environ=NO_SLURM, root=tmp_path)
    assert info.memory is not None
    assert (info.memory.source, info.memory.cgroup_file) == ("cgroup", str(limit))
    assert info.capacity()[Memory] == Memory("960M")  # less the 64 MiB minimum headroom
    assert info.cores is not None
    if len(nodes) > 1:
        assert info.cores.grouped_by == "numa"
        assert info.capacity()[Cores].groups == {
            cpu: (0 if cpu in cpus[:half] else 1) for cpu in cpus
        }


def test_skipped_parts_are_none_and_absent_from_the_capacity() -> None:
    info = describe_node(environ=NO_SLURM, skip={Cores, Memory, GPU, WTime, Disk})
    assert info == NodeInfo(None, None, None, None)
    assert len(info.capacity()) == 0


def test_a_custom_headroom_changes_only_memory() -> None:
    none = Headroom(fraction=0.0, minimum_kib=0)
    capacity = detect_capacity("cores:1", environ=NO_SLURM, headroom=none)
    physical = psutil.virtual_memory().total // 1024
    cgroup = cgroup_memory_limit()
    limit = physical if cgroup is None else min(physical, cgroup.limit_bytes // 1024)
    assert capacity[Memory].kib == limit - limit % 1024
