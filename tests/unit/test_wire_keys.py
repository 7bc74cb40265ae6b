"""Key files: generated with mode 0600, refused when others may read or replace them."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from grainlike import ConfigError
from grainlike.wire import ensure_local_key, key_from_env_or_file, load_key, parse_key

HEX_KEY = "00112233445566778899aabbccddeeff" * 2


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key(path: Path, text: str, file_mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(file_mode)
    return path


def test_a_generated_key_has_32_random_bytes_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "grainlike" / "key"
    key = ensure_local_key(path)
    assert len(key) == 32
    assert mode(path) == 0o600
    assert path.read_text() == key.hex() + "\n"
    assert ensure_local_key(path) == key
    assert ensure_local_key(tmp_path / "other") != key
    assert sorted(p.name for p in path.parent.iterdir()) == ["key"]  # no temporary left


def test_a_generated_key_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        ensure_local_key(tmp_path / "key")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "key") == 0o600


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, file_mode: int) -> None:
    path = write_key(tmp_path / "key", HEX_KEY, file_mode)
    with pytest.raises(ConfigError, match=f"mode {file_mode:04o}.*chmod 600") as info:
        load_key(path)
    assert HEX_KEY not in str(info.value)
    with pytest.raises(ConfigError, match="mode"):
        ensure_local_key(path)


def test_a_key_file_holds_hex_text(tmp_path: Path) -> None:
    path = write_key(tmp_path / "key", f"  {HEX_KEY}\n")
    assert load_key(path) == bytes.fromhex(HEX_KEY)


def test_a_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot use it: No such file"):
        load_key(tmp_path / "absent")


def test_a_short_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="8 bytes, it needs at least 16") as info:
        load_key(write_key(tmp_path / "key", "abcdef0123456789"))
    assert "abcdef0123456789" not in str(info.value)
    with pytest.raises(ConfigError, match="GRAINLIKE_KEY"):
        parse_key("hunter2", source="$GRAINLIKE_KEY")


def test_the_environment_key_is_hex_or_raw_text() -> None:
    assert key_from_env_or_file(None, {"GRAINLIKE_KEY": HEX_KEY}) == bytes.fromhex(HEX_KEY)
    passphrase = "correct horse battery staple"
    assert key_from_env_or_file(None, {"GRAINLIKE_KEY": passphrase}) == passphrase.encode()
    assert key_from_env_or_file(None, {}) is None


def test_a_key_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = write_key(tmp_path / "key", HEX_KEY)
    environ = {"GRAINLIKE_KEY": "correct horse battery staple"}
    assert key_from_env_or_file(str(path), environ) == bytes.fromhex(HEX_KEY)


# -- ssh's StrictModes: nobody else may replace the key ------------------------------------------

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
OTHER_UID = 54321


def directory(path: Path, dir_mode: int) -> Path:
    path.mkdir()
    path.chmod(dir_mode)
    return path


@pytest.mark.parametrize("dir_mode", [0o777, 0o770, 0o775, 0o757])
def test_a_private_key_in_a_directory_others_may_write_is_refused(
    tmp_path: Path, dir_mode: int
) -> None:
    shared = directory(tmp_path / "shared", dir_mode)
    path = write_key(shared / "key", HEX_KEY)
    with pytest.raises(ConfigError) as info:
        load_key(path)
    message = str(info.value)
    assert f"directory {str(shared)!r} has mode {dir_mode:04o}" in message
    assert f"chmod go-w {shared}" in message
    assert HEX_KEY not in message


def test_a_directory_others_may_write_anywhere_above_the_key_is_refused(tmp_path: Path) -> None:
    shared = directory(tmp_path / "shared", 0o777)
    private = directory(shared / "mine", 0o700)  # others may rename it and put theirs there
    path = write_key(private / "key", HEX_KEY)
    with pytest.raises(ConfigError, match=re.escape(f"directory {str(shared)!r} has mode 0777")):
        load_key(path)


def test_a_sticky_directory_others_may_write_is_accepted_like_tmp(tmp_path: Path) -> None:
    sticky = directory(tmp_path / "sticky", 0o1777)
    path = write_key(sticky / "key", HEX_KEY)
    assert load_key(path) == bytes.fromhex(HEX_KEY)


def test_a_key_reached_through_a_link_in_an_open_directory_is_refused(tmp_path: Path) -> None:
    path = write_key(directory(tmp_path / "private", 0o700) / "key", HEX_KEY)
    shared = directory(tmp_path / "shared", 0o777)
    (shared / "key").symlink_to(path)
    assert load_key(path) == bytes.fromhex(HEX_KEY)
    with pytest.raises(ConfigError, match=re.escape(f"directory {str(shared)!r}")):
        load_key(shared / "key")


def test_a_key_is_not_generated_in_a_directory_others_may_write(tmp_path: Path) -> None:
    shared = directory(tmp_path / "shared", 0o777)
    with pytest.raises(ConfigError, match="has mode 0777"):
        ensure_local_key(shared / "grainlike" / "key")
    assert not (shared / "grainlike" / "key").exists()


def test_a_generated_key_directory_is_0700(tmp_path: Path) -> None:
    ensure_local_key(tmp_path / "config" / "grainlike" / "key")
    assert mode(tmp_path / "config" / "grainlike") == 0o700


@ROOT_ONLY
def test_a_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = write_key(tmp_path / "key", HEX_KEY)
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigError, match=f"is owned by uid {OTHER_UID}, not by you"):
        load_key(path)


@ROOT_ONLY
def test_a_key_in_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    theirs = directory(tmp_path / "theirs", 0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    path = write_key(theirs / "key", HEX_KEY)
    with pytest.raises(
        ConfigError, match=re.escape(f"directory {str(theirs)!r} is owned by uid {OTHER_UID}")
    ):
        load_key(path)
