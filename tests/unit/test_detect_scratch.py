"""The scratch root, the disk it offers, and the task directories under it
(grainlike/worker/_scratch.py), on real directories."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from grainlike import ConfigError, Cores, Disk
from grainlike.worker import Headroom, ScratchInfo, describe_node, detect_capacity
from grainlike.worker._memlimit import GIB, MIB
from grainlike.worker._scratch import (
    SCRATCH_HEADROOM,
    ScratchDirectories,
    detect_scratch,
    directory_size,
)

TIB = 1024 * GIB


def free_space(free_kib: int) -> Callable[[Path], tuple[int, int, int]]:
    """A stand-in for ``shutil.disk_usage`` of a 100 TiB file system with ``free_kib`` free."""

    def usage(root: Path) -> tuple[int, int, int]:
        return (100 * TIB * 1024, 100 * TIB * 1024 - free_kib * 1024, free_kib * 1024)

    return usage


def test_a_given_root_offers_its_free_space_less_the_headroom(tmp_path: Path) -> None:
    info = detect_scratch(tmp_path)
    free_kib = shutil.disk_usage(tmp_path).free // 1024
    assert (info.root, info.source) == (tmp_path, "given")
    assert abs(info.free_kib - free_kib) < 64 * MIB  # others may write meanwhile
    assert info.kib == SCRATCH_HEADROOM.usable(info.free_kib)
    assert info.headroom_kib == info.free_kib - info.kib
    assert info.capacity() == Disk.from_kib(info.kib)


def test_the_default_root_is_the_temp_dir() -> None:
    info = detect_scratch()
    assert (info.root, info.source) == (Path(tempfile.gettempdir()), "tempdir")


@pytest.mark.parametrize(
    ("free_kib", "headroom_kib"),
    [
        (100 * GIB, 5 * GIB),  # 5%
        (10 * GIB, GIB),  # at least 1 GiB
        (GIB, GIB // 2),  # never more than half
        (20 * TIB, TIB),  # no upper bound
    ],
)
def test_the_headroom_is_five_percent_at_least_a_gib_and_at_most_half(
    tmp_path: Path, free_kib: int, headroom_kib: int
) -> None:
    info = detect_scratch(tmp_path, usage=free_space(free_kib))
    assert info.headroom_kib == headroom_kib
    assert info.kib % MIB == 0


def test_a_full_file_system_offers_no_disk(tmp_path: Path) -> None:
    info = detect_scratch(tmp_path, usage=free_space(0))
    assert info.kib == 0
    assert info.capacity() is None


def test_a_custom_headroom_changes_the_disk(tmp_path: Path) -> None:
    none = Headroom(fraction=0.0, minimum_kib=0, maximum_kib=0)
    info = detect_scratch(tmp_path, headroom=none, usage=free_space(8 * GIB))
    assert info.kib == 8 * GIB


@pytest.mark.parametrize("make", ["missing", "file"])
def test_a_root_that_is_no_directory_is_a_config_error_naming_it(tmp_path: Path, make: str) -> None:
    root = tmp_path / "root"
    if make == "file":
        root.write_text("")
    with pytest.raises(ConfigError, match=f"scratch root '{root}': not a directory"):
        detect_scratch(root)


def test_a_root_this_user_may_not_write_in_is_a_config_error(tmp_path: Path) -> None:
    # Root may write in any directory of a normal file system, but in no process's /proc entry.
    root = Path("/proc/1") if os.geteuid() == 0 else tmp_path
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="may not write in it"):
            detect_scratch(root)
    finally:
        tmp_path.chmod(0o700)


def test_detection_offers_the_scratch_roots_disk(tmp_path: Path) -> None:
    capacity = detect_capacity("cores:1", scratch=tmp_path)
    assert (
        capacity[Disk].kib == detect_scratch(tmp_path).kib
        or abs(capacity[Disk].kib - detect_scratch(tmp_path).kib) <= 64 * MIB
    )
    info = describe_node(scratch=tmp_path, skip={Cores})
    assert isinstance(info.scratch, ScratchInfo)
    assert info.scratch.root == tmp_path
    assert info.capacity().get(Disk) is not None


def test_disk_zero_turns_it_off_and_disk_overrides_it(tmp_path: Path) -> None:
    assert detect_capacity("cores:1,disk:0", scratch=tmp_path).get(Disk) is None
    assert detect_capacity("cores:1,disk:5G", scratch=tmp_path)[Disk] == Disk(5)
    assert describe_node(skip={Disk}).scratch is None


def test_a_bad_root_is_refused_even_when_disk_is_overridden(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        detect_capacity("disk:5G", scratch=tmp_path / "nowhere")


# -- sizes and task directories ----------------------------------------------------------------


def test_a_directory_size_counts_the_blocks_of_everything_under_it_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 3 * MIB * 1024)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * MIB * 1024)
    os.link(tmp_path / "sub" / "b", tmp_path / "sub" / "hard")
    (tmp_path / "sub" / "link").symlink_to("/usr")
    size = directory_size(tmp_path)
    assert 4 * MIB * 1024 <= size < 4 * MIB * 1024 + 64 * 1024
    assert directory_size(tmp_path / "gone") == 0


def test_a_directory_size_with_repair_enters_a_locked_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "data").write_bytes(b"x" * MIB * 1024)
    locked.chmod(0)
    try:
        assert directory_size(tmp_path, repair=True) >= MIB * 1024
        assert stat.S_IMODE(locked.stat().st_mode) == 0o700
    finally:
        locked.chmod(0o700)


async def test_a_task_directory_is_private_measured_and_removed(tmp_path: Path) -> None:
    directories = ScratchDirectories(tmp_path, interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(directories.serve)
        path = directories.create(7)
        assert path.parent == tmp_path
        assert path.name.startswith("grainlike-task-7-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert directories.live() == [path]
        (path / "data").write_bytes(b"x" * 2 * MIB * 1024)
        await trio.sleep(0.3)  # walked at least once with the data there
        (path / "data").unlink()
        (path / "locked").mkdir()
        (path / "locked" / "small").write_bytes(b"z")
        (path / "locked").chmod(0o500)
        with trio.CancelScope(shield=True):
            peak = await directories.finish(path)
        nursery.cancel_scope.cancel()
    assert 2 * MIB * 1024 <= peak < 2 * MIB * 1024 + 64 * 1024
    assert not path.exists()
    assert directories.live() == []


async def test_an_idle_sampler_is_never_woken(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    directories = ScratchDirectories(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(directories.serve)
        await trio.sleep(3600)
        stats = trio.lowlevel.current_statistics()
        assert stats.tasks_runnable == 0
        nursery.cancel_scope.cancel()


def test_a_root_that_vanished_fails_creation(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    directories = ScratchDirectories(root)
    root.rmdir()
    with pytest.raises(FileNotFoundError):
        directories.create(1)


# -- the command line and the worker's options -------------------------------------------------


@pytest.mark.parametrize("command", ["worker 127.0.0.1:4242", "detect"])
def test_a_bad_scratch_root_is_one_line_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from grainlike.cli import main

    missing = tmp_path / "missing"
    assert main([*command.split(), "--scratch", str(missing)]) == 2
    name = command.split()[0]
    assert capsys.readouterr().err == (
        f"grainlike {name}: scratch root '{missing}': not a directory\n"
    )


def test_detect_reports_the_scratch_root_on_stderr_and_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from grainlike.cli import main

    assert main(["detect", "--resources", "cores:1,gpu:0", "--scratch", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert ",disk:" in out and len(out.splitlines()) == 1
    assert f"scratch: {tmp_path} (" in err
    assert main(["detect", "--json", "--scratch", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scratch"]["root"] == str(tmp_path)
    assert report["scratch"]["source"] == "given"
    assert report["scratch"]["headroom"] > 0


def test_worker_options_check_and_resolve_the_scratch_root(tmp_path: Path) -> None:
    from grainlike.worker import WorkerOptions

    assert WorkerOptions(scratch=tmp_path).scratch == tmp_path
    assert WorkerOptions().scratch is None
    with pytest.raises(ConfigError, match="not a directory"):
        WorkerOptions(scratch=tmp_path / "missing")
