"""The one private cattrs converter of the wire, for resources and messages.

Structuring is strict: a wrong type, a missing or extra field, or an invalid value raises
``ProtocolError`` naming what was wrong, never a silently coerced value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args, get_origin

import cattrs

from .._exceptions import ProtocolError
from ..resource import Kind, Resources
from ._checks import check_float, check_list, short
from ._kind_codec import KindCodec

__all__ = ["make_converter"]


# -- strict primitives ----------------------------------------------------------------------------


def _strict(expected: type[Any]) -> Callable[[object, Any], Any]:
    def structure(value: object, _: Any) -> Any:
        if type(value) is not expected:
            raise ProtocolError(f"expected {expected.__name__}, got {short(value)}")
        return value

    return structure


def _structure_float(value: object, _: Any) -> float:
    return check_float(value, "field")


def _structure_bytes(value: object, _: Any) -> bytes:
    if not isinstance(value, bytes):
        raise ProtocolError(f"expected bytes, got {short(value)}")
    return value


def _structure_json_dict(value: object, _: Any) -> dict[str, Any]:
    if not (isinstance(value, dict) and all(type(key) is str for key in value)):
        raise ProtocolError(f"expected a map with string keys, got {short(value)}")
    return value


def _is_dict(type_: Any) -> bool:
    return type_ is dict or get_origin(type_) is dict


def _is_variadic_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def make_converter() -> cattrs.Converter:
    """A new private converter for every resource kind and every wire message.

    Kinds registered with ``grainlike.resource.register_kind`` after the converter was made
    are found too: the registry is read when a kind is (un)structured.
    A registered kind crosses when it is an attrs class (its init fields, through cattrs'
    generated hooks) or an ``IdSet`` subclass (its IDs).

    Returns:
        A ``cattrs.Converter`` whose ``structure`` raises ``ProtocolError`` on anything malformed.
    """
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=False)
    kinds = KindCodec(converter)
    for primitive in (int, str, bool):
        converter.register_structure_hook(primitive, _strict(primitive))
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bytes, _structure_bytes)
    converter.register_structure_hook_func(_is_dict, _structure_json_dict)

    def structure_tuple_factory(type_: Any) -> Callable[[object, Any], tuple[Any, ...]]:
        item_type = get_args(type_)[0]
        item = converter.get_structure_hook(item_type)

        def structure_tuple(value: object, _: Any) -> tuple[Any, ...]:
            return tuple(item(element, item_type) for element in check_list(value, str(type_)))

        return structure_tuple

    converter.register_structure_hook_factory(_is_variadic_tuple, structure_tuple_factory)
    converter.register_unstructure_hook(Resources, kinds.unstructure_resources)
    converter.register_structure_hook(Resources, kinds.structure_resources)
    is_kind: Callable[[Any], bool] = lambda t: isinstance(t, type) and issubclass(t, Kind)  # noqa: E731
    converter.register_unstructure_hook_func(is_kind, kinds.unstructure)
    converter.register_structure_hook_func(is_kind, kinds.structure)
    return converter
