"""Fixtures for the unit tests of the dispatcher, the embedded worker and the user API."""

from __future__ import annotations

import pytest

import grainlike._session
from grainlike.resource import Resources, ResourceSpec, parse_resources, with_overrides

#: What the embedded worker owns in unit tests, whatever machine they run on.
LOCAL_CAPACITY = "cores:2,mem:4G,wtime:inf"


@pytest.fixture
def local_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_session``'s embedded worker owns ``LOCAL_CAPACITY`` instead of this machine's
    detected capacity; ``resources=`` still overrides it per kind (``resources="cores:1"``)."""

    def fake_capacity(resources: ResourceSpec | None) -> Resources:
        return with_overrides(parse_resources(LOCAL_CAPACITY, capacity=True), resources)

    monkeypatch.setattr(grainlike._session, "_local_capacity", fake_capacity)
