"""The cgroup memory limit from /proc and cgroupfs trees (grainlike/worker/_cgroup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grainlike import ConfigError
from grainlike.worker._cgroup import (
    UNLIMITED_BYTES,
    CgroupLimit,
    CgroupMount,
    cgroup_memory_limit,
    parse_mountinfo,
    parse_proc_cgroup,
)

V2_MOUNT = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MEMORY_MOUNT = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
V1_CPU_MOUNT = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
ROOT_MOUNT = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"


def make_proc(root: Path, *, cgroup: str, mountinfo: str) -> None:
    proc = root / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo)


def write_limit(root: Path, directory: str, name: str, value: str) -> Path:
    path = root / directory.lstrip("/") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return path


def test_parse_mountinfo_keeps_cgroup2_and_v1_memory_mounts_only() -> None:
    text = ROOT_MOUNT + V2_MOUNT + V1_CPU_MOUNT + V1_MEMORY_MOUNT
    assert parse_mountinfo(text) == [
        CgroupMount(2, "/", "/sys/fs/cgroup"),
        CgroupMount(1, "/", "/sys/fs/cgroup/memory"),
    ]


def test_parse_mountinfo_unescapes_paths_and_reads_the_mount_root() -> None:
    line = "40 31 0:38 /docker/abc /my\\040cgroup rw - cgroup2 cgroup2 rw\n"
    assert parse_mountinfo(line) == [CgroupMount(2, "/docker/abc", "/my cgroup")]


def test_parse_proc_cgroup_finds_the_unified_and_the_memory_lines() -> None:
    text = "9:name=systemd:/\n4:memory:/slurm/uid_0/job_7\n1:cpu,cpuacct:/\n0::/user.slice\n"
    assert parse_proc_cgroup(text) == {1: "/slurm/uid_0/job_7", 2: "/user.slice"}


def test_v2_takes_the_smallest_memory_max_up_to_the_root(tmp_path: Path) -> None:
    make_proc(tmp_path, cgroup="0::/a/b/c\n", mountinfo=ROOT_MOUNT + V2_MOUNT)
    write_limit(tmp_path, "/sys/fs/cgroup/a/b/c", "memory.max", "max")
    parent = write_limit(tmp_path, "/sys/fs/cgroup/a/b", "memory.max", str(3 << 30))
    write_limit(tmp_path, "/sys/fs/cgroup/a", "memory.max", str(5 << 30))
    assert cgroup_memory_limit(root=tmp_path) == CgroupLimit(3 << 30, parent)


def test_v2_with_max_everywhere_has_no_limit(tmp_path: Path) -> None:
    make_proc(tmp_path, cgroup="0::/a\n", mountinfo=V2_MOUNT)
    write_limit(tmp_path, "/sys/fs/cgroup/a", "memory.max", "max")
    assert cgroup_memory_limit(root=tmp_path) is None


def test_v1_reads_limit_in_bytes_and_treats_huge_values_as_none(tmp_path: Path) -> None:
    make_proc(tmp_path, cgroup="4:memory:/job/step\n", mountinfo=V1_MEMORY_MOUNT)
    write_limit(
        tmp_path, "/sys/fs/cgroup/memory/job/step", "memory.limit_in_bytes", "9223372036854771712"
    )
    job = write_limit(tmp_path, "/sys/fs/cgroup/memory/job", "memory.limit_in_bytes", str(1 << 30))
    assert cgroup_memory_limit(root=tmp_path) == CgroupLimit(1 << 30, job)
    job.write_text(f"{UNLIMITED_BYTES}\n")
    assert cgroup_memory_limit(root=tmp_path) is None


def test_hybrid_hierarchies_give_the_smaller_of_both(tmp_path: Path) -> None:
    make_proc(
        tmp_path,
        cgroup="4:memory:/mem\n0::/unified\n",
        mountinfo=V2_MOUNT.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ") + V1_MEMORY_MOUNT,
    )
    write_limit(tmp_path, "/sys/fs/cgroup/unified/unified", "memory.max", str(8 << 30))
    v1 = write_limit(tmp_path, "/sys/fs/cgroup/memory/mem", "memory.limit_in_bytes", "4096")
    assert cgroup_memory_limit(root=tmp_path) == CgroupLimit(4096, v1)


def test_a_container_mount_root_is_stripped_from_the_process_path(tmp_path: Path) -> None:
    """Without a cgroup namespace a container sees /docker/ID in /proc but mounts only ID."""
    mount = "40 31 0:38 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
    make_proc(tmp_path, cgroup="0::/docker/abc/inner\n", mountinfo=mount)
    inner = write_limit(tmp_path, "/sys/fs/cgroup/inner", "memory.max", "2048")
    write_limit(tmp_path, "/sys/fs/cgroup", "memory.max", "4096")
    assert cgroup_memory_limit(root=tmp_path) == CgroupLimit(2048, inner)


def test_a_cgroup_outside_the_mount_reads_the_mount_root(tmp_path: Path) -> None:
    make_proc(tmp_path, cgroup="0::/../../elsewhere\n", mountinfo=V2_MOUNT)
    top = write_limit(tmp_path, "/sys/fs/cgroup", "memory.max", "8192")
    assert cgroup_memory_limit(root=tmp_path) == CgroupLimit(8192, top)


def test_no_proc_or_no_memory_hierarchy_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_memory_limit(root=tmp_path / "nothing") is None
    make_proc(tmp_path, cgroup="1:cpu,cpuacct:/\n", mountinfo=ROOT_MOUNT + V1_CPU_MOUNT)
    assert cgroup_memory_limit(root=tmp_path) is None


def test_a_malformed_limit_names_its_file(tmp_path: Path) -> None:
    make_proc(tmp_path, cgroup="0::/a\n", mountinfo=V2_MOUNT)
    write_limit(tmp_path, "/sys/fs/cgroup/a", "memory.max", "lots")
    with pytest.raises(ConfigError, match=r"a/memory.max: 'lots' is not a memory limit"):
        cgroup_memory_limit(root=tmp_path)


def _expected_limit_of_this_machine() -> int | None:
    """The limit read by hand, with neither mountinfo nor path juggling shared with the code."""
    limits: list[int] = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0":
            candidates = [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")]
            name = "memory.max"
        elif "memory" in controllers.split(","):
            candidates = [Path("/sys/fs/cgroup/memory")]
            name = "memory.limit_in_bytes"
        else:
            continue
        for base in candidates:
            if not (base / "cgroup.procs").exists():
                continue
            directory = base / path.lstrip("/")
            while True:
                file = directory / name
                text = file.read_text().strip() if file.exists() else "max"
                if text != "max" and int(text) < UNLIMITED_BYTES:
                    limits.append(int(text))
                if directory == base:
                    break
                directory = directory.parent
            break
    return min(limits) if limits else None


def test_this_machine_limit_matches_its_cgroup_files() -> None:
    found = cgroup_memory_limit()
    expected = _expected_limit_of_this_machine()
    assert (None if found is None else found.limit_bytes) == expected
