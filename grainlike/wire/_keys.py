"""Shared keys: from a file (hex text, mode 0600), from ``GRAINLIKE_KEY``, or generated.

A key file that others can read, or replace, is refused (ssh's ``StrictModes``, see
``grainlike._permissions``): anyone who reads the key can run code on every worker that
trusts it, and anyone who swaps in a key of their own can pose as the dispatcher.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from .._exceptions import ConfigError
from .._permissions import check_private_directories, check_private_file

__all__ = [
    "KEY_ENV",
    "MIN_KEY_SIZE",
    "ensure_local_key",
    "key_from_env_or_file",
    "load_key",
    "parse_key",
]

#: The environment variable that holds the key (hex, or raw text).
KEY_ENV: Final = "GRAINLIKE_KEY"
#: Fewer bytes than this make a key that a captured handshake lets an attacker guess offline.
MIN_KEY_SIZE: Final = 16
#: Bytes of a generated key.
GENERATED_KEY_SIZE: Final = 32

_HEX: Final = frozenset(string.hexdigits)


def parse_key(text: str, *, source: str) -> bytes:
    """The key in ``text``: hex when it is (an even number of hex digits), else the raw text.

    Args:
        text: The key as written (surrounding whitespace is ignored).
        source: Where it came from, for error messages (the key itself never appears in them).

    Raises:
        ConfigError: The key is empty or shorter than ``MIN_KEY_SIZE`` bytes.
    """
    text = text.strip()
    if text and len(text) % 2 == 0 and _HEX.issuperset(text):
        key = bytes.fromhex(text)
    else:
        key = text.encode()
    if len(key) < MIN_KEY_SIZE:
        raise ConfigError(
            f"{source}: the key is {len(key)} bytes, it needs at least {MIN_KEY_SIZE} "
            f"(e.g. {2 * GENERATED_KEY_SIZE} hex digits from `python -c 'import secrets; "
            "print(secrets.token_hex())'`)"
        )
    return key


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key file: hex text, readable and writable by its owner only.

    Raises:
        ConfigError: The file is missing or unreadable, group or others may read it, it or a
            directory above it is not yours (or root's) or may be written by others, or it
            does not hold a valid key.
    """
    file = check_private_file(path, what="key file")
    try:
        text = file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"key file {str(file)!r}: cannot read it: {exc}") from exc
    return parse_key(text, source=f"key file {str(file)!r}")


def key_from_env_or_file(key_file: str | None, environ: Mapping[str, str]) -> bytes | None:
    """The key from ``key_file`` when given, else from ``GRAINLIKE_KEY`` in ``environ``.

    Returns:
        The key, or ``None`` when neither is set (a local run then calls ``ensure_local_key``).

    Raises:
        ConfigError: The file or the variable does not hold a valid key.
    """
    if key_file is not None:
        return load_key(key_file)
    text = environ.get(KEY_ENV)
    if text is None:
        return None
    return parse_key(text, source=f"${KEY_ENV}")


def ensure_local_key(path: str | os.PathLike[str]) -> bytes:
    """The key in ``path``, generated first (32 random bytes, mode 0600) when there is none.

    The file appears complete or not at all, so concurrent runs agree on one key.

    Raises:
        ConfigError: The existing file is invalid or others may read it, or it cannot be made.
    """
    target = Path(path)
    if target.exists():
        return load_key(target)
    key = secrets.token_bytes(GENERATED_KEY_SIZE)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not even a fresh key goes where others could swap it for theirs.
        check_private_directories(target.parent, what=f"key file {os.fspath(path)!r}")
        # Created with mode 0600 from the start: never a moment when others could read it.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(key.hex() + "\n")
            os.link(temporary, target)  # fails if another run was first; then use its key
        except FileExistsError:
            return load_key(target)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"key file {os.fspath(path)!r}: cannot create it: {exc}") from exc
    return key
