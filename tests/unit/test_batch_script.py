"""Rendering worker job scripts: directives, setup order, no key material, quoting.

PBS is checked as text only: no PBS server exists on the test machines.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from grainlike import ConfigError
from grainlike.batch import Profile, check_key_file, render_script, template_path
from grainlike.wire import load_key

DISPATCHER = "login1.example.org:4242"


def _directives(script: str, prefix: str) -> list[str]:
    return [
        line.removeprefix(prefix + " ") for line in script.splitlines() if line.startswith(prefix)
    ]


def _exec_line(script: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith("exec ")]
    return line


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "grainlike.key"
    path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    return path


def test_both_templates_are_shipped() -> None:
    assert template_path("slurm").is_file()
    assert template_path("pbs").is_file()


def test_slurm_directives_say_what_the_profile_asks_for(key_file: Path) -> None:
    profile = Profile(
        cores=8,
        memory="1536M",
        gpus=2,
        walltime="1-02:03:04",
        partition="gpu",
        account="chem42",
        job_name="sim",
        extra_directives=["--constraint=a100", "#SBATCH --exclusive"],
    )
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file))
    assert script.startswith("#!/bin/bash\n")
    assert _directives(script, "#SBATCH") == [
        "-J sim",
        "-N 1",
        "-n 1",
        "-c 8",
        "--mem=1536M",
        "--gres=gpu:2",
        "-t 1-02:03:04",
        "-p gpu",
        "-A chem42",
        "-o sim-%j.out",
        "--constraint=a100",
        "--exclusive",
    ]


def test_slurm_leaves_out_what_the_profile_does_not_set(key_file: Path) -> None:
    script = render_script(Profile(), dispatcher=DISPATCHER, key_file=str(key_file))
    assert _directives(script, "#SBATCH") == [
        "-J grainlike",
        "-N 1",
        "-n 1",
        "-c 1",
        "-o grainlike-%j.out",
    ]


def test_pbs_directives_say_what_the_profile_asks_for(key_file: Path) -> None:
    profile = Profile(
        system="pbs",
        cores=4,
        memory="16G",
        gpus=1,
        walltime="30h",
        partition="workq",
        account="chem42",
        job_name="sim",
        output="/scratch/logs/sim.out",
    )
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file))
    assert _directives(script, "#PBS") == [
        "-N sim",
        "-l select=1:ncpus=4:mem=16gb:ngpus=1",
        "-l walltime=30:00:00",
        "-q workq",
        "-A chem42",
        "-j oe",
        "-o /scratch/logs/sim.out",
    ]
    assert "#SBATCH" not in script
    # PBS cannot tell the worker its remaining time, so the script does, in seconds.
    assert shlex.split(_exec_line(script))[-2:] == ["--walltime", "108000"]


def test_pbs_memory_that_is_not_whole_gigabytes_uses_smaller_units(key_file: Path) -> None:
    profile = Profile(system="pbs", memory="1536M")
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file))
    assert "#PBS -l select=1:ncpus=1:mem=1536mb" in script.splitlines()


@pytest.mark.parametrize("system", ["slurm", "pbs"])
def test_the_script_names_the_key_file_and_holds_no_key(key_file: Path, system: str) -> None:
    profile = Profile(system=system)
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file))
    key = key_file.read_text()
    assert key not in script
    assert key[:16] not in script
    words = shlex.split(_exec_line(script))
    assert words[words.index("--key-file") + 1] == str(key_file)
    assert "GRAINLIKE_KEY" not in script


@pytest.mark.parametrize(("system", "job_var"), [("slurm", "SLURM_JOB_ID"), ("pbs", "PBS_JOBID")])
def test_setup_lines_run_in_order_before_the_worker(
    key_file: Path, system: str, job_var: str
) -> None:
    setup = ["module purge", "module load python/3.11", "source ~/envs/gl/bin/activate"]
    profile = Profile(system=system, setup=setup, worker_args=["--resources", "gpu:0"])
    lines = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file)).splitlines()
    positions = [lines.index(line) for line in setup]
    assert positions == sorted(positions)
    exec_at = lines.index(_exec_line("\n".join(lines)))
    assert positions[-1] < exec_at
    assert max(i for i, line in enumerate(lines) if line.startswith("#")) < positions[0]
    words = shlex.split(lines[exec_at])
    assert words[:6] == ["exec", sys.executable, "-m", "grainlike", "worker", DISPATCHER]
    assert words[words.index("--name") + 1] == f"grainlike-${{{job_var}}}"
    assert words[-2:] == ["--resources", "gpu:0"]


def test_a_private_key_file_passes_the_check(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(key_file.parent)
    assert check_key_file(key_file.name) == key_file


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_others_can_read_is_refused(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}"):
        check_key_file(key_file)


def test_a_key_file_in_a_directory_others_may_write_is_refused_as_load_key_does(
    key_file: Path,
) -> None:
    key_file.parent.chmod(0o777)
    with pytest.raises(ConfigError, match="has mode 0777: others may replace") as info:
        check_key_file(key_file)
    with pytest.raises(ConfigError) as loading:
        load_key(key_file)
    assert str(loading.value) == str(info.value)


def test_a_missing_key_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot use it"):
        check_key_file(tmp_path / "absent")
    tmp_path.chmod(0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        check_key_file(tmp_path)


def test_a_relative_key_file_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = render_script(Profile(), dispatcher=DISPATCHER, key_file="keys/gl.key")
    words = shlex.split(_exec_line(script))
    assert words[words.index("--key-file") + 1] == str(tmp_path / "keys" / "gl.key")


@pytest.mark.parametrize("dispatcher", ["login1", "login1:", ":4242", "a b:1", "h:99999", "h:0"])
def test_a_dispatcher_that_is_not_host_port_is_refused(key_file: Path, dispatcher: str) -> None:
    with pytest.raises(ConfigError, match="dispatcher"):
        render_script(Profile(), dispatcher=dispatcher, key_file=str(key_file))


def test_an_ipv6_dispatcher_is_accepted(key_file: Path) -> None:
    script = render_script(Profile(), dispatcher="[::1]:4242", key_file=str(key_file))
    assert shlex.split(_exec_line(script))[5] == "[::1]:4242"


@pytest.mark.slow
@pytest.mark.parametrize(("system", "job_var"), [("slurm", "SLURM_JOB_ID"), ("pbs", "PBS_JOBID")])
def test_paths_with_spaces_reach_the_worker_as_single_arguments(
    tmp_path: Path, system: str, job_var: str
) -> None:
    """Run the rendered script with bash; the 'worker' is python printing its argv."""
    folder = tmp_path / "my project (copy)"
    folder.mkdir()
    key = folder / "shared key's file"
    key.write_text("secret")
    key.chmod(0o600)
    dump = folder / "argv dump.json"
    python = [
        sys.executable,
        "-c",
        "import json,sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))",
    ]
    profile = Profile(
        system=system,
        python=[*python, str(dump)],
        setup=[f"cd {shlex.quote(str(folder))}", "export WHERE=$(pwd)"],
        worker_args=["--resources", "token:has space"],
    )
    script = folder / "job.sh"
    script.write_text(render_script(profile, dispatcher=DISPATCHER, key_file=str(key)))
    env = {**os.environ, job_var: "4711", "PBS_O_WORKDIR": str(tmp_path)}
    subprocess.run(["bash", str(script)], check=True, env=env, cwd=tmp_path, timeout=30)
    argv = json.loads(dump.read_text())
    assert argv == [
        str(dump),
        "worker",
        DISPATCHER,
        "--key-file",
        str(key),
        "--name",
        "grainlike-4711",
        "--resources",
        "token:has space",
    ]
