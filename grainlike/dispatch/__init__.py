"""The dispatcher: queue, placement, pools, learned limits, events, and the TCP server.

What the layers above use; the records and the placement machinery are private modules
(tests of internals import them from there).
"""

from ._dispatcher import HEAD as HEAD
from ._dispatcher import Dispatcher as Dispatcher
from ._dispatcher import DispatcherConfig as DispatcherConfig
from ._events import TERMINAL_EVENTS as TERMINAL_EVENTS
from ._events import Event as Event
from ._events import EventBus as EventBus
from ._events import TaskCancelled as TaskCancelled
from ._events import TaskFailed as TaskFailed
from ._events import TaskFinished as TaskFinished
from ._events import TaskPlaced as TaskPlaced
from ._events import TaskRetried as TaskRetried
from ._events import TaskStarted as TaskStarted
from ._events import TaskSubmitted as TaskSubmitted
from ._events import WorkerDrained as WorkerDrained
from ._events import WorkerJoined as WorkerJoined
from ._events import WorkerLost as WorkerLost
from ._handle import AsCompleted as AsCompleted
from ._handle import TaskHandle as TaskHandle
from ._handle import as_completed as as_completed
from ._handle import wait_all as wait_all
from ._journal import Journal as Journal
from ._journal_events import journal_events as journal_events
from ._journal_read import JournalSummary as JournalSummary
from ._journal_read import summarize_journal as summarize_journal
from ._learned import GroupStats as GroupStats
from ._learned import LearnedLimits as LearnedLimits
from ._learned import LearningRule as LearningRule
from ._server import ServerConfig as ServerConfig
from ._server import serve_workers as serve_workers
