"""Token and Counter (grainlike/resource/_labels.py): features and named counts."""

from __future__ import annotations

import re

import pytest

from grainlike import Counter, InsufficientResourcesError, ResourceError, Token
from grainlike.resource import MAX_COUNT, parse_resources


def test_a_token_request_matches_a_subset_of_the_capacity_names() -> None:
    capacity = Token("bigmem", "infiniband")
    assert capacity.request(Token("bigmem"))
    assert capacity.request(Token("infiniband", "bigmem"))
    assert not capacity.request(Token("a100"))
    assert not capacity.request(Token("bigmem", "a100"))


def test_tokens_are_not_consumed() -> None:
    capacity = Token("bigmem")
    first = capacity.alloc(Token("bigmem"))
    second = capacity.alloc(Token("bigmem"))
    assert first.names == second.names == frozenset({"bigmem"})
    assert capacity.stat() == {"token": (1.0, 1.0)}
    capacity.dealloc(first)
    capacity.dealloc(second)
    with pytest.raises(InsufficientResourcesError):
        capacity.alloc(Token("a100"))


def test_token_names_are_a_set() -> None:
    assert Token("b", "a") == Token("a", "b", "a")
    assert str(Token("b", "a")) == "token:a+b"
    assert repr(Token("b", "a")) == "Token('a', 'b')"


@pytest.mark.parametrize(
    ("names", "message"),
    [((), "Token(): give at least one name"), (("big mem",), "Token('big mem'): a token name")],
)
def test_invalid_tokens_name_the_value(names: tuple[str, ...], message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        Token(*names)


def test_a_counter_has_a_name_and_a_count() -> None:
    licence = Counter("license", 3)
    assert licence.name == "license"
    assert licence.n == 3
    assert licence.label == "license"
    assert repr(licence) == "Counter('license', 3)"
    assert str(licence) == "license:3"


def test_counter_alloc_and_dealloc_count_down_and_up() -> None:
    capacity = Counter("license", 4)
    held = capacity.alloc(Counter("license", 3))
    assert held == Counter("license", 3)
    assert capacity.stat() == {"license": (1.0, 4.0)}
    assert not capacity.request(Counter("license", 2))
    capacity.dealloc(held)
    assert capacity.stat() == {"license": (4.0, 4.0)}
    assert capacity == Counter("license", 4)


def test_counters_of_different_names_are_different_kinds() -> None:
    assert Counter("license", 1) != Counter("seat", 1)
    assert not Counter("license", 4).request(Counter("seat", 1))
    assert len(Counter("license", 1) & Counter("seat", 1)) == 2


def test_counter_names_keep_their_case() -> None:
    assert Counter("License", 1) != Counter("license", 1)
    assert str(Counter("License", 2)) == "License:2"


@pytest.mark.parametrize(
    ("name", "n", "message"),
    [
        ("x", 0, "Counter('x', 0): a request needs a count of at least 1"),
        ("x", -2, "Counter('x', -2): a request needs a count of at least 1"),
        ("x", 1.5, "Counter('x', 1.5): a count must be a whole number"),
        ("x", True, "Counter('x', True): a count must be a whole number"),
        ("a b", 1, "Counter('a b', 1): a counter name is letters"),
        ("cores", 1, "Counter('cores', 1): 'cores' names a resource kind, not a counter"),
        ("Memory", 1, "Counter('Memory', 1): 'Memory' names a resource kind, not a counter"),
    ],
)
def test_invalid_counters_name_the_kind_and_the_value(name: str, n: int, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        Counter(name, n)


def test_a_counter_holds_up_to_2_to_the_53() -> None:
    assert MAX_COUNT == 2**53
    assert Counter("x", MAX_COUNT).n == MAX_COUNT
    assert parse_resources(f"x:{MAX_COUNT}") == Counter("x", MAX_COUNT)
    assert Counter("x", MAX_COUNT).stat() == {"x": (float(MAX_COUNT), float(MAX_COUNT))}


@pytest.mark.parametrize("n", [MAX_COUNT + 1, 10**30])
def test_a_larger_count_is_refused_naming_it(n: int) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"Counter('x', {n}): a count is at most")):
        Counter("x", n)


def test_a_count_too_long_to_be_a_number_is_refused_without_echoing_it() -> None:
    with pytest.raises(ResourceError, match="a counter takes a whole number") as info:
        parse_resources("x:" + "9" * 5000)
    assert len(str(info.value)) < 200
