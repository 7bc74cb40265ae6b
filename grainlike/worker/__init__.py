"""The worker: capacity detection, task execution (its process pool too), enforcement and
measurement."""

from ._context import GVAR as GVAR
from ._context import TaskContext as TaskContext
from ._context import current_allocation as current_allocation
from ._context import current_task_context as current_task_context
from ._context import set_task_context as set_task_context
from ._context import task_context_or_none as task_context_or_none
from ._detect import NodeInfo as NodeInfo
from ._detect import describe_node as describe_node
from ._detect import detect_capacity as detect_capacity
from ._local import LocalWorker as LocalWorker
from ._memlimit import Headroom as Headroom
from ._memlimit import MemoryInfo as MemoryInfo
from ._nvml import GPUDevice as GPUDevice
from ._nvml import GPUInfo as GPUInfo
from ._process import run_process as run_process
from ._remote import Departure as Departure
from ._remote import WorkerOptions as WorkerOptions
from ._remote import serve_worker as serve_worker
from ._scratch import ScratchInfo as ScratchInfo
from ._topology import CoreInfo as CoreInfo
from ._topology import overcommitted as overcommitted
from ._uplink import Uplink as Uplink
from ._walltime import WalltimeInfo as WalltimeInfo
