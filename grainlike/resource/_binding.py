"""``fn @ resources``: the operator lives on the resources, its meaning in the API layer.

Python asks the right operand for ``__rmatmul__`` when a plain function is on the left, so the
resource classes must answer it.  The resource layer knows nothing of tasks, so the API layer
installs the function that builds a bound function with ``set_binder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["bind", "set_binder"]

_binder: Callable[[Any, Any], Any] | None = None


def set_binder(binder: Callable[[Any, Any], Any]) -> None:
    """Install what ``fn @ resources`` builds (called once by ``grainlike`` on import)."""
    global _binder
    _binder = binder


def bind(fn: Any, resources: Any) -> Any:
    """``fn @ resources``, or ``NotImplemented`` when no API layer is loaded."""
    if _binder is None:
        return NotImplemented
    return _binder(fn, resources)
