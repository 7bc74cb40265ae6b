"""Parsl's resource specifications (Work Queue's units) as grainlike resources."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._exceptions import ResourceError
from ._combined import Resources
from ._cores import GPU, Cores
from ._disk import Disk
from ._kind import Kind
from ._memory import Memory
from ._wtime import WTime

__all__ = ["parsl_spec"]

#: The keys that map, in Parsl's order.
_KEYS = ("cores", "memory", "disk", "gpus", "running_time_min")
#: Keys Parsl takes that are no resource here, and how grainlike says them instead.
_ELSEWHERE = {"priority": "bound.options(priority=...)", "category": "WTime(group=...)"}


def _whole(key: str, value: float) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ResourceError(f"{key} is a whole number")
    return int(value)


def _part(key: str, value: Any) -> Kind | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResourceError(f"{key} is a number, not {value!r}")
    if key == "cores":
        return Cores(_whole(key, value))
    if key == "gpus":
        return None if value == 0 else GPU(_whole(key, value))
    if key == "running_time_min":
        return WTime(softT=value)
    if not (value > 0 and math.isfinite(value)):
        raise ResourceError(f"{key} must be a positive number of MB")
    return (Memory if key == "memory" else Disk)(f"{value!r}M")


def parsl_spec(spec: Mapping[str, Any]) -> Resources:
    """A Parsl/Work Queue ``parsl_resource_specification`` as resources.

    ``parsl_spec({"cores": 1, "memory": 1000, "disk": 1000})`` is
    ``Cores(1) & Memory("1000M") & Disk("1000M")``: memory and disk are MB as Work Queue counts
    them (1 MB = 1024**2 bytes, grainlike's ``M``).  ``gpus`` is ``GPU(n)`` (0: none), and
    ``running_time_min``, the wall time in seconds a worker must have left to be given the
    task, is ``WTime(softT=seconds)``.

    Raises:
        ResourceError: for a key Parsl's Work Queue executor does not take, for one that is no
            resource (``priority``: use ``bound.options(priority=...)``), or for a value the
            kind refuses; the message names the key and the value.
    """
    if not isinstance(spec, Mapping):
        raise ResourceError(f"parsl_spec({spec!r}): a Parsl resource specification is a dict")
    parts: list[Kind] = []
    for key, value in spec.items():
        if key in _ELSEWHERE:
            raise ResourceError(
                f"parsl_spec({{{key!r}: {value!r}}}): {key} is no resource; "
                f"grainlike has it as {_ELSEWHERE[key]}"
            )
        if key not in _KEYS:
            raise ResourceError(
                f"parsl_spec({{{key!r}: {value!r}}}): {key!r} is no key of a Parsl resource "
                f"specification grainlike maps ({', '.join(_KEYS)})"
            )
        try:
            part = _part(key, value)
        except ResourceError as error:
            raise ResourceError(f"parsl_spec({{{key!r}: {value!r}}}): {error}") from None
        if part is not None:
            parts.append(part)
    return Resources(*parts)
