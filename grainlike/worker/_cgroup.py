"""The memory limit of the process's control group, cgroup v2 or v1 (or both, in hybrid mode)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import attrs

from .._exceptions import ConfigError

__all__ = ["CgroupLimit", "CgroupMount", "cgroup_memory_limit", "parse_mountinfo"]

#: v1 reports "no limit" as the largest page-aligned 64-bit value; anything this big is none.
UNLIMITED_BYTES = 2**62

#: The file that holds a cgroup's memory limit, per cgroup version.
LIMIT_FILE = {2: "memory.max", 1: "memory.limit_in_bytes"}


@attrs.frozen
class CgroupMount:
    """A mounted cgroup hierarchy that can limit memory.

    Attributes:
        version: 2 for the unified hierarchy, 1 for a v1 ``memory`` hierarchy.
        root: the cgroup at the mount's root (``/`` unless a container mounted a sub-tree).
        mount_point: where it is mounted.
    """

    version: int
    root: str
    mount_point: str


@attrs.frozen
class CgroupLimit:
    """The smallest memory limit on the way from the process's cgroup to the root.

    Attributes:
        limit_bytes: the limit.
        file: the file it was read from.
    """

    limit_bytes: int
    file: Path


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup2 mounts and the v1 mounts with the ``memory`` controller in ``mountinfo``."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 4:
            continue
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            mounts.append(CgroupMount(2, root, mount_point))
        elif fstype == "cgroup" and "memory" in options:
            mounts.append(CgroupMount(1, root, mount_point))
    return mounts


def parse_proc_cgroup(text: str) -> dict[int, str]:
    """Per cgroup version, the process's cgroup path in ``/proc/self/cgroup``.

    Version 2 is the ``0::/path`` line; version 1 is the line whose controllers include
    ``memory``.
    """
    paths: dict[int, str] = {}
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            paths[2] = path
        elif "memory" in controllers.split(","):
            paths[1] = path
    return paths


def _limit_in(directory: Path, version: int) -> int | None:
    path = directory / LIMIT_FILE[version]
    try:
        text = path.read_text().strip()
    except OSError:
        # The root cgroup has no limit file, nor has a hierarchy without the memory controller.
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{path}: {text!r} is not a memory limit") from None
    return None if value >= UNLIMITED_BYTES else value


def _own_directory(mount: CgroupMount, cgroup_path: str, root: Path) -> Path:
    """Where the process's cgroup appears under ``mount``, re-rooted under ``root``."""
    mounted = root / PurePosixPath(mount.mount_point).relative_to("/")
    path, base = PurePosixPath(cgroup_path), PurePosixPath(mount.root)
    if ".." in path.parts or not path.is_relative_to(base):
        # Outside what this mount shows (a cgroup namespace boundary): the mount's root is the
        # nearest cgroup we can read.
        return mounted
    return mounted.joinpath(*path.relative_to(base).parts)


def cgroup_memory_limit(*, root: Path = Path("/")) -> CgroupLimit | None:
    """The smallest memory limit of the process's cgroup and its ancestors, or ``None``.

    Reads ``/proc/self/mountinfo`` to find the cgroup hierarchies and ``/proc/self/cgroup`` to
    find the process in them.  In cgroup v2 the limit is ``memory.max`` (``max`` is none); in
    v1 it is ``memory.limit_in_bytes`` (a huge value is none).  A parent's limit binds its
    children, so every level up to the mount's root counts.  Hybrid systems have both
    hierarchies; the smaller limit wins.

    Args:
        root: the file-system root to read from (a test points this at a tree of its own).
    """
    try:
        mountinfo = (root / "proc/self/mountinfo").read_text()
        own = parse_proc_cgroup((root / "proc/self/cgroup").read_text())
    except OSError:
        return None  # no /proc (not Linux): no cgroups
    best: CgroupLimit | None = None
    seen: set[int] = set()
    for mount in parse_mountinfo(mountinfo):
        if mount.version not in own or mount.version in seen:
            continue  # the first mount of a hierarchy is enough; bind mounts repeat it
        seen.add(mount.version)
        top = root / PurePosixPath(mount.mount_point).relative_to("/")
        directory = _own_directory(mount, own[mount.version], root)
        while True:
            limit = _limit_in(directory, mount.version)
            if limit is not None and (best is None or limit < best.limit_bytes):
                best = CgroupLimit(limit, directory / LIMIT_FILE[mount.version])
            if directory == top or directory == directory.parent:
                break
            directory = directory.parent
    return best
