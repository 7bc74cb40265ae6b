"""A Slurm job's allocation from its environment (grainlike/worker/_slurmenv.py)."""

from __future__ import annotations

import pytest

from grainlike import ConfigError
from grainlike.worker._slurmenv import (
    expand_per_node,
    job_id,
    slurm_cpus_on_node,
    slurm_gpu_ids,
    slurm_memory_kib,
)

#: What sbatch -c 2 set in a real job on this machine (DefMemPerCPU=1024).
SBATCH_C2 = {
    "SLURM_JOB_ID": "9",
    "SLURM_CPUS_ON_NODE": "2",
    "SLURM_JOB_CPUS_PER_NODE": "2",
    "SLURM_MEM_PER_CPU": "1024",
    "SLURM_NODEID": "0",
}


def test_job_id_is_read_from_either_spelling() -> None:
    assert job_id({"SLURM_JOB_ID": "12"}) == "12"
    assert job_id({"SLURM_JOBID": "13"}) == "13"
    assert job_id({}) is None


def test_expand_per_node_repeats_counts() -> None:
    assert expand_per_node("4(x2),2") == [4, 4, 2]
    assert expand_per_node("36") == [36]


def test_expand_per_node_names_the_variable_when_malformed() -> None:
    with pytest.raises(ConfigError, match=r"SLURM_JOB_CPUS_PER_NODE='4\(2\)'"):
        expand_per_node("4(2)")


def test_cpus_on_node_prefers_slurm_cpus_on_node() -> None:
    assert slurm_cpus_on_node(SBATCH_C2) == 2
    assert slurm_cpus_on_node({"SLURM_CPUS_ON_NODE": "3", "SLURM_JOB_CPUS_PER_NODE": "8"}) == 3


def test_cpus_on_node_picks_this_nodes_entry_of_the_per_node_list() -> None:
    environ = {"SLURM_JOB_CPUS_PER_NODE": "4(x2),2", "SLURM_NODEID": "2"}
    assert slurm_cpus_on_node(environ) == 2
    assert slurm_cpus_on_node({"SLURM_JOB_CPUS_PER_NODE": "4(x2),2"}) == 4
    assert slurm_cpus_on_node({}) is None


def test_a_node_id_beyond_the_list_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"SLURM_NODEID=3 .* lists 2 node"):
        slurm_cpus_on_node({"SLURM_JOB_CPUS_PER_NODE": "1(x2)", "SLURM_NODEID": "3"})


def test_memory_per_node_is_megabytes() -> None:
    assert slurm_memory_kib({"SLURM_MEM_PER_NODE": "300"}) == 300 * 1024
    assert slurm_memory_kib({"SLURM_MEM_PER_NODE": "2G"}) == 2 * 1024**2


def test_memory_per_cpu_is_multiplied_by_the_cpus_on_this_node() -> None:
    assert slurm_memory_kib(SBATCH_C2) == 2 * 1024 * 1024
    environ = {"SLURM_MEM_PER_CPU": "500", "SLURM_JOB_CPUS_PER_NODE": "3,1", "SLURM_NODEID": "1"}
    assert slurm_memory_kib(environ) == 500 * 1024


def test_mem_zero_or_nothing_means_no_slurm_limit() -> None:
    assert slurm_memory_kib({"SLURM_MEM_PER_NODE": "0"}) is None
    assert slurm_memory_kib({"SLURM_JOB_ID": "4"}) is None


def test_memory_per_node_wins_over_per_cpu() -> None:
    environ = {**SBATCH_C2, "SLURM_MEM_PER_NODE": "700"}
    assert slurm_memory_kib(environ) == 700 * 1024


def test_memory_per_cpu_without_a_cpu_count_is_an_error() -> None:
    with pytest.raises(ConfigError, match="SLURM_MEM_PER_CPU='100' is set but neither"):
        slurm_memory_kib({"SLURM_MEM_PER_CPU": "100"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("SLURM_MEM_PER_NODE", "lots"), ("SLURM_CPUS_ON_NODE", "two"), ("SLURM_CPUS_ON_NODE", "-1")],
)
def test_malformed_variables_are_named_with_their_value(name: str, value: str) -> None:
    environ = {name: value, "SLURM_MEM_PER_CPU": "100"}
    with pytest.raises(ConfigError, match=f"{name}='{value}'"):
        slurm_memory_kib(environ)


def test_job_gpus_are_indices_and_unset_is_none() -> None:
    assert slurm_gpu_ids({"SLURM_JOB_GPUS": "0,2"}) == (0, 2)
    assert slurm_gpu_ids({"SLURM_JOB_GPUS": "1-3"}) == (1, 2, 3)
    assert slurm_gpu_ids({"SLURM_JOB_GPUS": ""}) == ()
    assert slurm_gpu_ids({}) is None
    with pytest.raises(ConfigError, match="SLURM_JOB_GPUS='gpu0'"):
        slurm_gpu_ids({"SLURM_JOB_GPUS": "gpu0"})
