"""grainlike: a resource-typed task scheduler for Python, built on trio."""

from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ConfigError as ConfigError
from ._exceptions import DiskLimitError as DiskLimitError
from ._exceptions import GrainlikeError as GrainlikeError
from ._exceptions import InsufficientResourcesError as InsufficientResourcesError
from ._exceptions import MemoryLimitError as MemoryLimitError
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import ResourceError as ResourceError
from ._exceptions import TaskCancelledError as TaskCancelledError
from ._exceptions import TaskFailedError as TaskFailedError
from ._exceptions import UnsatisfiableError as UnsatisfiableError
from ._exceptions import WorkerLostError as WorkerLostError
from .resource import GPU as GPU
from .resource import ZERO as ZERO
from .resource import Cores as Cores
from .resource import Counter as Counter
from .resource import Disk as Disk
from .resource import Kind as Kind
from .resource import Memory as Memory
from .resource import Node as Node
from .resource import Resources as Resources
from .resource import Token as Token
from .resource import WTime as WTime
from .resource import parse_resources as parse_resources
from .resource import parsl_spec as parsl_spec
from .resource import register_kind as register_kind

__version__ = "0.1.0"

__all__ = [
    "GPU",
    "GVAR",
    "ZERO",
    "AsCompleted",
    "AuthenticationError",
    "Bound",
    "ConfigError",
    "Cores",
    "Counter",
    "Disk",
    "DiskLimitError",
    "GrainlikeError",
    "InsufficientResourcesError",
    "Kind",
    "LearningRule",
    "Memory",
    "MemoryLimitError",
    "Node",
    "ProtocolError",
    "ResourceError",
    "Resources",
    "Session",
    "SessionOptions",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskHandle",
    "Token",
    "UnsatisfiableError",
    "WTime",
    "WaitGroup",
    "WorkerLostError",
    "as_completed",
    "current_allocation",
    "current_session",
    "delayed",
    "exec1",
    "explain",
    "gather",
    "open_session",
    "open_waitgroup",
    "parse_resources",
    "parsl_spec",
    "register_kind",
    "released",
    "run",
    "run_process",
]

from ._bound import Bound as Bound
from ._bound import delayed as delayed
from ._bound import exec1 as exec1
from ._released import released as released
from ._session import Session as Session
from ._session import SessionOptions as SessionOptions
from ._session import current_session as current_session
from ._session import explain as explain
from ._session import open_session as open_session
from ._session import run as run
from ._waitgroup import WaitGroup as WaitGroup
from ._waitgroup import gather as gather
from ._waitgroup import open_waitgroup as open_waitgroup
from .dispatch import AsCompleted as AsCompleted
from .dispatch import LearningRule as LearningRule
from .dispatch import TaskHandle as TaskHandle
from .dispatch import as_completed as as_completed
from .worker import GVAR as GVAR
from .worker import current_allocation as current_allocation
from .worker import run_process as run_process
