"""The resource algebra: typed kinds, combination with ``&``, request/alloc/dealloc.

Pure and synchronous; imports nothing from the rest of grainlike but its exceptions.
"""

from .._exceptions import InsufficientResourcesError as InsufficientResourcesError
from .._exceptions import ResourceError as ResourceError
from ._combined import ZERO as ZERO
from ._combined import Resources as Resources
from ._combined import as_resources as as_resources
from ._cores import GPU as GPU
from ._cores import Cores as Cores
from ._disk import Disk as Disk
from ._grammar import Node as Node
from ._grammar import ResourceSpec as ResourceSpec
from ._grammar import near_kind as near_kind
from ._grammar import parse_resources as parse_resources
from ._grammar import with_overrides as with_overrides
from ._idset import IdSet as IdSet
from ._kind import Kind as Kind
from ._kind import kind_for_name as kind_for_name
from ._kind import register_kind as register_kind
from ._kind import registered_kinds as registered_kinds
from ._labels import Counter as Counter
from ._labels import Token as Token
from ._memory import Memory as Memory
from ._parsl import parsl_spec as parsl_spec
from ._size import Size as Size
from ._units import MAX_COUNT as MAX_COUNT
from ._units import MAX_DURATION as MAX_DURATION
from ._units import MAX_ID as MAX_ID
from ._units import MAX_IDS as MAX_IDS
from ._units import MAX_KIB as MAX_KIB
from ._wtime import WTime as WTime
