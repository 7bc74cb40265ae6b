"""Files that hold secrets: who may read them, and who may replace them.

A key file that others can read gives them the key; one in a directory that others can write
lets them swap in a key of their own.  The rule is ssh's ``StrictModes``: the file is a
regular file owned by you or root, and so is every directory from it up to your home
directory (or the root): none of them writable by group or others.  A sticky directory (like
``/tmp``) owned by you or root may be writable by others, since then nobody else can rename
or remove what is in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._exceptions import ConfigError

__all__ = ["check_private_directories", "check_private_file"]


def check_private_file(
    path: str | os.PathLike[str], *, what: str = "key file", secret: bool = True
) -> Path:
    """Check that only its owner can read ``path`` and only they (or root) can replace it.

    Args:
        path: The file.
        what: What it is, for messages (``key file``, ``TLS certificate``).
        secret: Whether group and others must not read it either (a key); else they must
            only not write it (a certificate that is pinned).

    Returns:
        The absolute path.

    Raises:
        ConfigError: The file is missing or not a regular file, is owned by someone else, has
            a mode that lets others read (or write) it, or sits in a directory that others
            may write.  The message names the file or directory, its mode, and the fix.
    """
    file = Path(os.path.abspath(path))
    name = str(file)
    try:
        info = file.stat()
    except OSError as error:
        raise ConfigError(f"{what} {name!r}: cannot use it: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {name!r}: not a regular file")
    _check_owner(info, f"{what} {name!r}", "it")
    mode = stat.S_IMODE(info.st_mode)
    if mode & (0o077 if secret else 0o022):
        others = "read" if secret else "change"
        fix = "chmod 600" if secret else "chmod go-w"
        raise ConfigError(
            f"{what} {name!r} has mode {mode:04o}: others may {others} it; run `{fix} {name}`"
        )
    # Both the path as given and the one its links lead to: a link in a directory that
    # others may write can be replaced as easily as the file.
    check_private_directories(file.parent, what=f"{what} {name!r}")
    check_private_directories(Path(os.path.realpath(file)).parent, what=f"{what} {name!r}")
    return file


def check_private_directories(directory: str | os.PathLike[str], *, what: str) -> None:
    """Check ``directory`` and those above it, up to the home directory or the root.

    Args:
        directory: Where the private file is, or will be.
        what: The file, for messages.

    Raises:
        ConfigError: A directory is owned by someone other than you or root, or group or
            others may write it and it is not sticky.
    """
    home = {os.path.abspath(Path.home()), os.path.realpath(Path.home())}
    current = Path(os.path.abspath(directory))
    while True:
        try:
            info = current.stat()
        except OSError as error:
            raise ConfigError(
                f"{what}: cannot check directory {str(current)!r}: {error.strerror}"
            ) from None
        where = f"{what}: directory {str(current)!r}"
        _check_owner(info, where, "the file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise ConfigError(
                f"{where} has mode {mode:04o}: others may replace the file; run "
                f"`chmod go-w {current}` or keep the file in a directory only you can write"
            )
        if str(current) in home or current.parent == current:
            return
        current = current.parent


def _check_owner(info: os.stat_result, where: str, thing: str) -> None:
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise ConfigError(
            f"{where} is owned by uid {info.st_uid}, not by you (uid {me}) or root: its owner "
            f"may replace {thing}"
        )
