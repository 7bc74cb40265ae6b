"""Batch profiles: loading TOML, defaults, and errors that name the key and the value."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

from grainlike import ConfigError, Memory
from grainlike.batch import Profile, load_profile, profile_from_dict

GOOD = """
system = "slurm"
partition = "gpu"
account = "chem42"
cores = 8
memory = "16G"
gpus = 2
walltime = "1-02:03:04"
job_name = "sim-workers"
output = "logs/worker-%j.out"
extra_directives = ["--constraint=a100", "#SBATCH --exclusive"]
setup = ["module load cuda/12", "source ~/envs/sim/bin/activate"]
worker_args = ["--resources", "token:a100"]
python = "python3 -m grainlike"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


def test_a_complete_profile_loads_every_key(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, GOOD))
    assert profile == Profile(
        system="slurm",
        partition="gpu",
        account="chem42",
        cores=8,
        memory=Memory("16G"),
        gpus=2,
        walltime=93784.0,
        job_name="sim-workers",
        output="logs/worker-%j.out",
        extra_directives=("--constraint=a100", "#SBATCH --exclusive"),
        setup=("module load cuda/12", "source ~/envs/sim/bin/activate"),
        worker_args=("--resources", "token:a100"),
        python=("python3", "-m", "grainlike"),
    )


def test_an_empty_profile_takes_the_defaults(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, ""))
    assert profile == Profile()
    assert (profile.system, profile.cores, profile.gpus, profile.memory) == ("slurm", 1, 0, None)
    assert profile.python == (sys.executable, "-m", "grainlike")
    assert profile.job_name == "grainlike"


def test_the_shipped_local_slurm_profile_loads_by_name() -> None:
    profile = load_profile("local-slurm")
    assert (profile.system, profile.partition, profile.cores) == ("slurm", "debug", 1)
    assert profile.memory == Memory("1G")
    assert profile.walltime == 3600.0


def test_queue_is_another_name_for_partition(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, 'system = "pbs"\nqueue = "workq"\n'))
    assert (profile.system, profile.partition) == ("pbs", "workq")


def test_walltime_in_units_and_seconds_is_rounded_up_to_whole_seconds() -> None:
    assert Profile(walltime="90m").walltime == 5400.0
    assert Profile(walltime=59.5).walltime == 60.0
    assert Profile(walltime="00:10:00").walltime == 600.0


def test_an_unknown_key_is_named_with_its_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "cores = 2\nnodes = 4\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert "nodes = 4" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('system = "lsf"', "system = 'lsf'"),
        ("cores = 0", "cores = 0"),
        ('cores = "4"', "cores = '4'"),
        ("cores = true", "cores = True"),
        ("gpus = -1", "gpus = -1"),
        ('memory = "lots"', "memory = 'lots'"),
        ("memory = 0", "memory = 0"),
        ('walltime = "soon"', "walltime = 'soon'"),
        ("walltime = -5", "walltime = -5"),
        ('job_name = "my job"', "job_name = 'my job'"),
        ('partition = "debug; rm -rf"', "partition = 'debug; rm -rf'"),
        ('account = ""', "account = ''"),
        ('setup = "module load x"', "setup = 'module load x'"),
        ('setup = ["a\\nb"]', "setup = 'a\\nb'"),
        ("extra_directives = [1]", "extra_directives = [1]"),
        ('python = ""', "python = ''"),
        ('python = "python \\"unclosed"', "python = 'python \"unclosed'"),
        ("worker_args = 3", "worker_args = 3"),
        ('output = "a\\"b"', "output = 'a\"b'"),
    ],
)
def test_a_bad_value_is_named_with_its_key(tmp_path: Path, line: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile(_write(tmp_path, line + "\n"))
    assert named in str(caught.value)


def test_partition_and_queue_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="partition = 'a' and queue = 'b'"):
        profile_from_dict({"partition": "a", "queue": "b"})


def test_malformed_toml_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(_write(tmp_path, "cores = = 2\n"))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_profile(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read it"):
        load_profile("no-such-shipped-profile")


def test_evolve_validates_like_construction() -> None:
    with pytest.raises(ConfigError, match="cores = 0"):
        attrs.evolve(Profile(), cores=0)
    assert attrs.evolve(Profile(), system="pbs").system == "pbs"


def test_the_example_profile_loads_and_fits_the_test_slurm() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "slurm" / "profile.toml"
    profile = load_profile(example)
    assert (profile.system, profile.partition, profile.cores) == ("slurm", "debug", 2)
    assert (profile.memory, profile.walltime) == (Memory("2G"), 3600.0)
    assert profile.setup == ()
