"""Where the files shipped with grainlike (batch templates, site profiles) are found."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["resources_dir", "shipped_profile", "template_path"]

_PACKAGE = Path(__file__).resolve().parents[1]


def resources_dir() -> Path:
    """The folder of shipped templates and profiles.

    A wheel installs the repository's ``resources/`` as ``grainlike/_resources``; an editable or
    source checkout uses the repository's ``resources/`` itself.
    """
    installed = _PACKAGE / "_resources"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "resources"


def template_path(system: Literal["slurm", "pbs"]) -> Path:
    """The shipped batch-script template for ``system``: ``slurm.sh.tmpl`` or ``pbs.sh.tmpl``."""
    return resources_dir() / f"{system}.sh.tmpl"


def shipped_profile(name: str) -> Path | None:
    """The shipped profile called ``name`` (``profiles/<name>.toml``), if there is one."""
    candidate = resources_dir() / "profiles" / f"{name}.toml"
    return candidate if candidate.is_file() else None
