"""The wire: messages, their encoding, framing, authentication and keys.

Imports only the resource layer.  Message classes know nothing of msgpack; the converter of
``make_converter()`` and ``encode``/``decode`` turn them into bytes and back.
"""

from ._auth import MAGIC as MAGIC
from ._auth import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._auth import authenticate_as_client as authenticate_as_client
from ._auth import authenticate_as_server as authenticate_as_server
from ._call import Call as Call
from ._call import CallPacker as CallPacker
from ._call import CallUnpacker as CallUnpacker
from ._call import check_executor as check_executor
from ._converter import make_converter as make_converter
from ._dial import open_connection as open_connection
from ._dial import parse_address as parse_address
from ._encoding import decode as decode
from ._encoding import encode as encode
from ._framing import DEFAULT_MAX_FRAME as DEFAULT_MAX_FRAME
from ._framing import FramedStream as FramedStream
from ._keys import KEY_ENV as KEY_ENV
from ._keys import ensure_local_key as ensure_local_key
from ._keys import key_from_env_or_file as key_from_env_or_file
from ._keys import load_key as load_key
from ._keys import parse_key as parse_key
from ._liveness import Pulse as Pulse
from ._liveness import Silence as Silence
from ._messages import MAX_REPORTED_SECONDS as MAX_REPORTED_SECONDS
from ._messages import MESSAGE_TYPES as MESSAGE_TYPES
from ._messages import CancelTasks as CancelTasks
from ._messages import Drain as Drain
from ._messages import Draining as Draining
from ._messages import Goodbye as Goodbye
from ._messages import Heartbeat as Heartbeat
from ._messages import Hello as Hello
from ._messages import Message as Message
from ._messages import QueryStatus as QueryStatus
from ._messages import QuitAcknowledged as QuitAcknowledged
from ._messages import QuitWorkers as QuitWorkers
from ._messages import Refused as Refused
from ._messages import RunTasks as RunTasks
from ._messages import StatusReport as StatusReport
from ._messages import TaskOutcome as TaskOutcome
from ._messages import TasksFinished as TasksFinished
from ._messages import TaskSpec as TaskSpec
from ._messages import TasksStarted as TasksStarted
from ._messages import Usage as Usage
from ._messages import Welcome as Welcome
from ._outbox import Outbox as Outbox
from ._outbox import let_batch_grow as let_batch_grow
from ._payload import dumps_payload as dumps_payload
from ._payload import loads_payload as loads_payload
from ._payload import pack_exception as pack_exception
from ._payload import pack_outcome as pack_outcome
from ._payload import unpack_exception as unpack_exception
from ._payload import unpack_outcome as unpack_outcome
from ._tls import TLS_CERT_NAME as TLS_CERT_NAME
from ._tls import TLS_KEY_NAME as TLS_KEY_NAME
from ._tls import certificate_fingerprint as certificate_fingerprint
from ._tls import ensure_self_signed as ensure_self_signed
from ._tls import parse_fingerprint as parse_fingerprint
from ._tls import tls_client_context as tls_client_context
from ._tls import tls_client_context_pinned as tls_client_context_pinned
from ._tls import tls_server_context as tls_server_context
