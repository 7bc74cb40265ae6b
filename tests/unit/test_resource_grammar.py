"""The shorthand grammar (grainlike/resource/_grammar.py), both ways, both modes."""

from __future__ import annotations

import re

import pytest

from grainlike import (
    GPU,
    ZERO,
    Cores,
    Counter,
    Memory,
    ResourceError,
    Resources,
    Token,
    WTime,
    parse_resources,
)
from grainlike.resource import with_overrides


def test_the_full_example_parses_into_each_kind() -> None:
    parsed = parse_resources("cores:4,mem:16G,gpu:2,wtime:2h,token:bigmem,license:3")
    assert parsed == (
        Cores(4) & Memory(16) & GPU(2) & WTime(T=7200) & Token("bigmem") & Counter("license", 3)
    )
    assert str(parsed) == "cores:4,mem:16G,gpu:2,wtime:2h,token:bigmem,license:3"


def test_the_full_example_as_a_capacity_counts_down() -> None:
    parsed = parse_resources("cores:4,mem:16G,gpu:2,wtime:2h,token:bigmem,license:3", capacity=True)
    assert parsed[Cores] == Cores([0, 1, 2, 3])
    assert parsed[WTime].countdown
    assert 7190 < parsed[WTime].remaining() <= 7200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu", GPU(1)),
        ("cores", Cores(1)),
        ("mem", Memory(1)),
        ("license", Counter("license", 1)),
        ("gpu,seat", GPU(1) & Counter("seat", 1)),
    ],
)
def test_a_bare_name_means_one(text: str, expected: Resources) -> None:
    assert parse_resources(text) == expected


@pytest.mark.parametrize(
    ("text", "kib"),
    [
        ("mem:16", 16 * 1024**2),
        ("mem:0.5", 512 * 1024),
        ("mem:512K", 512),
        ("mem:512M", 512 * 1024),
        ("mem:16G", 16 * 1024**2),
        ("mem:2T", 2 * 1024**3),
        ("mem:16GB", 16 * 1024**2),
        ("mem:1.5g", 1536 * 1024),
        ("memory:1M", 1024),
    ],
)
def test_memory_units(text: str, kib: int) -> None:
    assert parse_resources(text)[Memory].kib == kib


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("wtime:45", 45.0),
        ("wtime:45s", 45.0),
        ("wtime:30m", 1800.0),
        ("wtime:2h", 7200.0),
        ("wtime:1.5h", 5400.0),
        ("wtime:2d", 172800.0),
        ("wtime:01:30:00", 5400.0),
        ("wtime:10:00", 600.0),
        ("wtime:1-12:00:00", 129600.0),
        ("walltime:1h", 3600.0),
    ],
)
def test_time_units(text: str, seconds: float) -> None:
    limit = parse_resources(text)[WTime]
    assert limit.T == seconds  # noqa: SIM300 - ruff takes Grain's .T for a constant


def test_soft_limits_and_groups_in_text() -> None:
    assert parse_resources("wtime:2h/1h@sim") == WTime(T="2h", softT="1h", group="sim")
    assert parse_resources("wtime:@sim") == WTime(group="sim")
    assert parse_resources("wtime:/10m") == WTime(softT=600)


def test_an_id_list_gives_those_ids() -> None:
    assert parse_resources("cores:[0-3,8]", capacity=True) == Cores([0, 1, 2, 3, 8])
    assert parse_resources("gpu:[1,3]", capacity=True) == GPU([1, 3])
    assert str(Cores([0, 1, 2, 3, 8])) == "cores:[0-3,8]"


def test_a_count_as_capacity_means_ids_from_zero() -> None:
    assert parse_resources("cores:4", capacity=True) == Cores([0, 1, 2, 3])


@pytest.mark.parametrize(
    "text", ["cores:0", "gpu:0", "mem:0", "mem:0G", "mem:0.0", "license:0", "wtime:0", "cores:[]"]
)
def test_quantity_zero_in_a_capacity_means_unavailable(text: str) -> None:
    assert parse_resources(text, capacity=True) == ZERO
    assert parse_resources(f"{text},seat:2", capacity=True) == Counter("seat", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cores:0", "Cores(0): a request needs at least 1 core"),
        ("gpu:0", "GPU(0): a request needs at least 1 GPU"),
        ("mem:0", "Memory('0'): memory must be positive"),
        ("license:0", "Counter('license', 0): a request needs a count of at least 1"),
        ("wtime:0", "WTime(T='0'): a duration must be positive"),
    ],
)
def test_quantity_zero_in_a_request_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        parse_resources(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cores:2,cores:3", "cores is given twice"),
        ("cpu:2,cores:3", "cores is given twice"),
        ("license:1,license:2", "license is given twice"),
        ("cores:two", "cores:two: give a whole number of cores or an ID list"),
        ("cores:[3-1]", "not an ID list"),
        ("license:1.5", "license:1.5: a counter takes a whole number"),
        ("license:-1", "Counter('license', -1): a count must not be negative"),
        (":3", "':3': a resource item starts with a name"),
        ("mem:lots", "Memory('lots'): not a memory size"),
        ("wtime", "wtime: give a duration"),
        ("token", "token: give names"),
        ("big mem:1", "Counter('big mem', 1): a counter name is letters"),
    ],
)
def test_malformed_text_names_the_item(text: str, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        parse_resources(text)


def test_a_walltime_capacity_is_one_duration() -> None:
    with pytest.raises(ResourceError, match="a walltime capacity is a single duration"):
        parse_resources("wtime:2h/1h", capacity=True)


def test_kind_names_match_in_any_case_and_counters_keep_theirs() -> None:
    assert parse_resources("CORES:2,Mem:1G") == Cores(2) & Memory(1)
    assert parse_resources("License:2") == Counter("License", 2)
    assert str(parse_resources("License:2")) == "License:2"


def test_spaces_around_items_are_ignored() -> None:
    assert parse_resources(" cores : 2 , mem:4G ,") == Cores(2) & Memory(4)


def test_empty_text_is_zero() -> None:
    assert parse_resources("") == ZERO


def test_the_dict_form_is_accepted_wherever_text_is() -> None:
    assert parse_resources({"gpu": 1, "license": 2}) == GPU(1) & Counter("license", 2)
    assert parse_resources({"mem": "16G", "wtime": 3600}) == Memory(16) & WTime(T=3600)
    assert parse_resources({"cores": [0, 1, 2, 8]}, capacity=True) == Cores([0, 1, 2, 8])
    assert parse_resources({"token": ["bigmem", "ib"]}) == Token("bigmem", "ib")
    assert parse_resources({"license": True, "gpu": None}) == Counter("license") & GPU(1)
    assert parse_resources({"gpu": 0, "cores": 2}, capacity=True) == Cores(2)


def test_the_dict_form_rejects_what_is_no_quantity() -> None:
    with pytest.raises(ResourceError, match="gpu: False is not a quantity"):
        parse_resources({"gpu": False})
    with pytest.raises(ResourceError, match="resource names must be strings"):
        parse_resources({1: 2})  # type: ignore[dict-item]
    with pytest.raises(ResourceError, match="resources are a string, a dict or resource objects"):
        parse_resources(4)  # type: ignore[arg-type]


def test_resources_pass_through() -> None:
    request = Cores(2) & Memory(1)
    assert parse_resources(request) is request
    assert parse_resources(Cores(2)) == Cores(2)


@pytest.mark.parametrize(
    "request_",
    [
        Cores(4) & Memory(0.1) & GPU([1, 3]),
        WTime(T=1.5, softT=0.25, group="a/b@c:d") & Token("x.y", "z-1"),
        Counter("License_2", 7) & Counter("seat", 1) & Memory("1000K"),
        WTime(T=86400 * 3 + 1),
    ],
)
def test_text_parses_back_to_the_same_request(request_: Resources) -> None:
    assert parse_resources(str(request_)) == request_


def test_with_overrides_replaces_or_removes_kinds() -> None:
    detected = Cores(8) & Memory(32) & GPU([0, 1])
    overridden = with_overrides(detected, "gpu:0,mem:16G,license:2")
    assert overridden == Cores(8) & Memory(16) & Counter("license", 2)
    assert with_overrides(detected, {"cores": [0, 1]}) == Cores(2) & Memory(32) & GPU(2)
    assert with_overrides(detected, None) == detected
    assert with_overrides(Cores(4), "wtime:0") == Cores(4)


@pytest.mark.parametrize(
    ("text", "near"),
    [("coers:1", "cores"), ("memroy:4", "memory"), ("gpuu", "gpu"), ("wtim:2", "wtime")],
)
def test_a_name_close_to_a_kinds_is_a_counter_with_a_warning(text: str, near: str) -> None:
    word = text.partition(":")[0]
    with pytest.warns(UserWarning) as caught:
        parsed = parse_resources(text)
    assert [str(w.message) for w in caught] == [
        f"{text}: {word} is no resource kind, so it is a counter; did you mean {near}?"
    ]
    assert parsed.get(word) is not None  # StepUp's rule: still a counter


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("text", ["license:3", "seat:2", "shared:4", "scratch:10", "Cores:2"])
def test_a_name_far_from_every_kind_warns_nothing(text: str) -> None:
    parse_resources(text)
