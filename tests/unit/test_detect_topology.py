"""Cores from the affinity, grouped from a sysfs tree (grainlike/worker/_topology.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grainlike import ConfigError, Cores
from grainlike.resource import parse_resources
from grainlike.worker._topology import (
    CoreInfo,
    detect_cores,
    numa_nodes,
    overcommitted,
    parse_cpu_list,
    pinnable,
    sockets,
)


def make_sysfs(
    root: Path, *, packages: dict[int, int] | None = None, nodes: dict[int, str] | None = None
) -> Path:
    """A sysfs tree: ``packages`` is CPU -> physical_package_id, ``nodes`` node -> cpulist."""
    sysfs = root / "sys"
    for cpu, package in (packages or {}).items():
        topology = sysfs / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
    for node, cpulist in (nodes or {}).items():
        directory = sysfs / "devices" / "system" / "node" / f"node{node}"
        directory.mkdir(parents=True)
        (directory / "cpulist").write_text(cpulist + "\n")
    return sysfs


def test_parse_cpu_list_reads_ranges_singles_and_nothing() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpu_list("5") == (5,)
    assert parse_cpu_list("\n") == ()


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "-2"])
def test_parse_cpu_list_names_the_file_and_value_when_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"node0/cpulist: '{text}' is not a CPU list"):
        parse_cpu_list(text, what="node0/cpulist")


def test_two_numa_nodes_group_the_cores_by_node(tmp_path: Path) -> None:
    sysfs = make_sysfs(
        tmp_path,
        packages={cpu: 0 for cpu in range(8)},
        nodes={0: "0-3", 1: "4-7", 2: ""},  # node 2 holds memory only
    )
    info = detect_cores({1, 2, 5, 6}, sysfs=sysfs)
    assert info == CoreInfo((1, 2, 5, 6), (0, 0, 1, 1), "numa")
    capacity = info.capacity()
    assert capacity.c == [1, 2, 5, 6]
    assert capacity.groups == {1: 0, 2: 0, 5: 1, 6: 1}


def test_sockets_group_the_cores_when_the_kernel_has_no_numa_nodes(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, packages={0: 0, 1: 0, 2: 1, 3: 1})
    info = detect_cores([0, 1, 2, 3], sysfs=sysfs)
    assert info == CoreInfo((0, 1, 2, 3), (0, 0, 1, 1), "socket")


def test_numa_nodes_inside_one_socket_win_over_the_socket(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, packages={0: 0, 1: 0, 2: 0, 3: 0}, nodes={0: "0-1", 1: "2-3"})
    assert detect_cores(range(4), sysfs=sysfs).grouped_by == "numa"


def test_affinity_inside_one_numa_node_falls_back_to_sockets(tmp_path: Path) -> None:
    """A pinned process on one node of a two-socket machine still sees no socket split."""
    sysfs = make_sysfs(tmp_path, packages={0: 0, 1: 0, 2: 1, 3: 1}, nodes={0: "0-1", 1: "2-3"})
    assert detect_cores({0, 1}, sysfs=sysfs) == CoreInfo((0, 1))


def test_one_group_or_no_sysfs_gives_no_groups(tmp_path: Path) -> None:
    one = make_sysfs(tmp_path / "one", packages={0: 0, 1: 0}, nodes={0: "0-1"})
    assert detect_cores({0, 1}, sysfs=one) == CoreInfo((0, 1), None, "none")
    assert detect_cores({0, 1}, sysfs=tmp_path / "missing") == CoreInfo((0, 1))
    assert detect_cores({0, 1}, sysfs=one).capacity() == Cores(2)


def test_a_grouping_that_misses_a_cpu_is_not_used(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, packages={0: 0, 1: 1, 2: -1}, nodes={0: "0", 1: "1"})
    assert detect_cores({0, 1, 2}, sysfs=sysfs) == CoreInfo((0, 1, 2))
    assert sockets(sysfs, [0, 1, 2]) == {0: 0, 1: 1}
    assert numa_nodes(sysfs) == {0: 0, 1: 1}


def test_a_malformed_package_id_names_its_file(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, packages={0: 0})
    path = sysfs / "devices/system/cpu/cpu0/topology/physical_package_id"
    path.write_text("zero\n")
    with pytest.raises(ConfigError, match=r"physical_package_id: 'zero' is not a package"):
        detect_cores({0}, sysfs=sysfs)


def test_an_empty_affinity_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CPU"):
        detect_cores(set(), sysfs=tmp_path)


def test_this_machine_groups_its_affinity_as_its_sysfs_says() -> None:
    affinity = os.sched_getaffinity(0)
    info = detect_cores(affinity)
    assert info.ids == tuple(sorted(affinity))
    packages = {sockets(Path("/sys"), affinity).get(cpu) for cpu in affinity}
    nodes = {numa_nodes(Path("/sys")).get(cpu) for cpu in affinity}
    if len(nodes) > 1 and None not in nodes:
        assert info.grouped_by == "numa"
    elif len(packages) > 1 and None not in packages:
        assert info.grouped_by == "socket"
    else:
        assert info == CoreInfo(tuple(sorted(affinity)))


def test_a_capacity_with_cores_this_process_may_not_use_is_overcommitted() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    beyond = max(allowed) + 1
    capacity = parse_resources(f"cores:[{','.join(map(str, allowed))},{beyond}]", capacity=True)
    warning = overcommitted(capacity)
    assert warning is not None
    assert f"offers core IDs [{beyond}] that this process may not run on" in warning
    assert overcommitted(parse_resources(f"cores:[{allowed[0]}]", capacity=True)) is None
    assert pinnable([beyond]) == set(allowed)  # nothing of it exists: run anywhere allowed
    assert pinnable([allowed[0], beyond]) == {allowed[0]}
