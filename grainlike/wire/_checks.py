"""Strict checks of values that arrived from a peer: each failure is a ``ProtocolError``."""

from __future__ import annotations

from typing import Any

from .._exceptions import ProtocolError

__all__ = [
    "Body",
    "check_fields",
    "check_float",
    "check_int",
    "check_list",
    "check_optional_float",
    "check_str",
    "short",
]

#: The body of a kind on the wire: field name to plain value.
Body = dict[str, Any]


def short(value: object) -> str:
    """``repr(value)``, cut to a length that suits an error message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def check_fields(
    tag: str, body: object, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Body:
    """Check that ``body`` is a dict with exactly the expected keys."""
    if not isinstance(body, dict):
        raise ProtocolError(f"{tag}: a kind's body must be a map, got {short(body)}")
    missing = [key for key in required if key not in body]
    extra = [key for key in body if key not in required and key not in optional]
    if missing or extra:
        raise ProtocolError(
            f"{tag} {short(body)}: missing fields {missing}, unexpected fields {extra}"
        )
    return body


def check_int(value: object, what: str) -> int:
    if type(value) is not int:
        raise ProtocolError(f"{what}: expected an integer, got {short(value)}")
    return value


def check_float(value: object, what: str) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise ProtocolError(f"{what}: expected a number, got {short(value)}")


def check_optional_float(value: object, what: str) -> float | None:
    return None if value is None else check_float(value, what)


def check_str(value: object, what: str) -> str:
    if type(value) is not str:
        raise ProtocolError(f"{what}: expected a string, got {short(value)}")
    return value


def check_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ProtocolError(f"{what}: expected a list, got {short(value)}")
    return list(value)
