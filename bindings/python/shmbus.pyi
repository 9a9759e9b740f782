# SPDX-License-Identifier: MIT
"""Type stubs of the extension module shmbus (bindings/python/*.c).

shmbus is same-host messaging between processes over shared memory: a Bus is a directory
of topic files, each a lock-free ring of variable-size messages. See docs/python.md.
"""

import asyncio
import builtins
import io
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Literal, TypedDict, final

from _typeshed import ReadableBuffer as _Buffer

__version__: str
BLOCK: Literal["block"]
OVERWRITE: Literal["overwrite"]
TOPIC_NAME_MAX: int
GROUP_NAME_MAX: int

_Policy = Literal["block", "overwrite"]
# A sink's filter: (topic, type, payload valid during the call) -> keep it?
_Filter = Callable[[str, int, memoryview], object]

class Error(Exception):
    """A shmbus call failed; .errno is the errno (set on every exception the module
    raises), str() the library's message."""

    errno: int

class Timeout(Error, TimeoutError):
    """Nothing came, or no space freed up, within the timeout (EAGAIN, ETIMEDOUT)."""

class Exists(Error, FileExistsError):
    """The topic exists with other options (EEXIST)."""

class NotFound(Error, FileNotFoundError):
    """No such topic, or no daemon (ENOENT)."""

class TooBig(Error):
    """The message is larger than the topic's max_message (EMSGSIZE)."""

class AccessDenied(Error, PermissionError):
    """Not allowed (EACCES, EPERM)."""

class Stale(Error):
    """An ack or nack of a message that is not pending for this member any more (ESTALE):
    its ack wait passed and it was handed back, another member has it, or it was acked
    already. Nothing changed."""

class Unsupported(Error, io.UnsupportedOperation):
    """The kernel cannot do this (ENOSYS): fileno() where io_uring cannot wait on a futex
    (Linux before 6.7, io_uring disabled). Also an io.UnsupportedOperation (an OSError)."""

class _TopicInfo(TypedDict):
    capacity: int
    max_message: int
    policy: _Policy
    max_readers: int
    max_publishers: int
    max_groups: int
    max_pending: int
    system: bool

class _TopicStats(TypedDict):
    published: int
    bytes: int
    aborted: int
    backpressure_waits: int
    wakeups: int
    readers_reclaimed: int
    tail: int
    next_seq: int
    readers: int
    publishers: int

class _ReaderInfo(TypedDict):
    slot: int
    pid: int
    group: str | None
    consumed: int
    lost: int
    pos: int | None
    lag_bytes: int
    lag_msgs: int

class _GroupInfo(TypedDict):
    name: str
    members: int
    cursor: int
    lag_bytes: int
    lag_msgs: int
    lost: int
    abandoned: int
    pending: int
    redelivered: int
    dead_lettered: int
    oldest_pending_ms: int
    max_deliver: int
    ack_wait_ms: int
    dead_letter: str | None

class _BusStats(TypedDict):
    topics: int
    clients: int
    watched: int
    daemon_pid: int
    daemon_running: bool
    published: int
    bytes: int
    aborted: int
    crashes: int
    readers_reclaimed: int
    publishers_reclaimed: int
    daemon_started_ns: int
    daemon_updated_ns: int

class _DaemonInfo(TypedDict):
    pid: int
    clients: int
    uptime_ms: int
    crashes: int
    version: str
    config: str

@final
class Bus:
    """A bus: the directory $SHMBUS_DIR/<name> (SHMBUS_DIR defaults to /dev/shm/shmbus;
    name None means $SHMBUS_BUS or "default"), created if needed. Registers with the
    bus's daemon when one runs. May be shared by threads."""

    def __init__(self, name: str | None = None) -> None: ...
    @property
    def name(self) -> str:
        """The bus's name."""
    @property
    def path(self) -> str:
        """The bus's directory."""
    @property
    def closed(self) -> bool:
        """True once close() was called."""
    @property
    def supervised(self) -> bool:
        """True if registered with the bus's daemon (shmbusd), False if embedded."""
    def close(self) -> None:
        """Close the handle; open publishers and subscribers stay usable until closed."""
    def __enter__(self) -> Bus: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def create_topic(
        self,
        name: str,
        capacity: int = 1048576,
        max_message: int = 0,
        policy: _Policy = "block",
        *,
        max_readers: int = 0,
        max_publishers: int = 0,
        max_groups: int = 0,
        system: bool = False,
        max_pending: int = 0,
    ) -> bool:
        """Create a topic: True if created, False if it existed with the same options.
        Raises Exists if it exists with other options, OverflowError for an int that does
        not fit its C field (never wrapped), ValueError for a name containing NUL."""
    def remove_topic(self, name: str, /) -> None:
        """Remove a topic (open handles keep the orphaned ring). Raises NotFound."""
    def topic_info(self, name: str, /) -> _TopicInfo:
        """The options the topic was created with."""
    def topics(self) -> list[str]:
        """The names of the bus's topics, sorted."""
    def topic_stats(self, name: str, /) -> _TopicStats:
        """A snapshot of the topic's shared counters."""
    def readers(self, name: str, /) -> list[_ReaderInfo]:
        """The topic's reader slots in use."""
    def groups(self, name: str, /) -> list[_GroupInfo]:
        """The topic's groups."""
    def stats(self) -> _BusStats:
        """The bus's counters; needs no daemon."""
    def daemon_ping(self, timeout: float | None = 1.0) -> _DaemonInfo:
        """Ask the daemon how it is. NotFound: no daemon; Timeout: no answer in time."""
    def publisher(self, topic: str, /) -> Publisher:
        """Open a publisher on an existing topic."""
    def subscriber(
        self,
        topic: str,
        group: str | None = None,
        from_earliest: bool = False,
        *,
        ack: bool = False,
        ack_wait_ms: int | None = None,
        max_deliver: int | None = None,
        max_pending: int | None = None,
        max_pending_member: int | None = None,
        dead_letter: str | None = None,
    ) -> Subscriber:
        """Open a fan-out subscriber, or a member of group, on an existing topic. ack=True:
        an acknowledging member (sub.ack(), sub.nack(), msg.deliveries). The group's
        options (None or 0: the default) apply only when this creates the group:
        ack_wait_ms (30000), max_deliver (5), max_pending (the topic's),
        max_pending_member (max_pending), dead_letter (None: "<topic>.dead"; "": none)."""
    def sink(
        self,
        patterns: str | Iterable[str],
        group: str | None = None,
        filter: _Filter | None = None,
        *,
        from_earliest: bool = False,
        ack: bool = False,
        ack_wait_ms: int | None = None,
        max_deliver: int | None = None,
        max_pending: int | None = None,
        max_pending_member: int | None = None,
        dead_letter: str | None = None,
    ) -> Sink:
        """Open a Sink over every topic patterns name (a str or an iterable of str: topic
        names, or patterns where a token "*" matches one token and a last ">" one or more,
        "orders.>"), now and as they are created. Without a group it reads every message
        of each (from the earliest retained with from_earliest; a topic created later from
        its first message); with one it is one member of that group on each topic (ack,
        and the group's options, as subscriber()).
        filter(topic, type, data) -> bool is called with each message before it is
        returned (data: a memoryview valid during the call only); what it rejects is
        consumed (acked by an acknowledging sink). It runs inside the sink's receive,
        maybe in another thread, and may ack(), nack() or close() the sink, nothing else.
        If it raises, its message is consumed as a rejected one (but nacked by an
        acknowledging sink: redelivered, then dead-lettered) and the receive raises the
        exception."""

@final
class Publisher:
    """A publisher on one topic. Not thread-safe: one per thread."""

    @property
    def topic(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def policy(self) -> _Policy: ...
    @property
    def max_message(self) -> int: ...
    def publish(self, data: _Buffer, type: int = 0, timeout: float | None = None) -> None:
        """Publish one message (any C-contiguous bytes-like object, copied once, into the
        ring). On a full 'block' topic wait up to timeout seconds (None: forever), then
        raise Timeout. Raises TooBig above max_message."""
    def publish_batch(
        self, messages: Sequence[_Buffer], type: int = 0, timeout: float | None = None
    ) -> int:
        """Publish several messages with as few ring claims as possible; returns how many
        were published (fewer than given only if the timeout expired after some)."""
    def reserve(self, size: int, type: int = 0, timeout: float | None = None) -> Reservation:
        """Reserve size bytes in the ring: `with pub.reserve(n) as buf:` fills the
        writable memoryview buf in place; committed on exit, aborted on an exception."""
    def close(self) -> None: ...
    def __enter__(self) -> Publisher: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Reservation:
    """Space reserved by Publisher.reserve(); also a writable buffer itself."""

    @property
    def buffer(self) -> memoryview:
        """The writable memoryview of the space (while open)."""
    @property
    def state(self) -> Literal["open", "committed", "aborted"]: ...
    def commit(self, type: int | None = None) -> None:
        """Publish the space. BufferError (left open) while a buffer of it other than
        the memoryview handed out is alive."""
    def abort(self) -> None:
        """Drop the space; readers skip it."""
    def __len__(self) -> int: ...
    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]: ...

@final
class Message:
    """A received message. .data (and the message's own buffer) is valid until the
    subscriber's next recv or close; the other attributes stay."""

    @property
    def data(self) -> memoryview:
        """The payload: a read-only memoryview into the ring. Raises ValueError once the
        subscriber received another message or closed; the memoryview itself is released
        then (using it raises ValueError)."""
    @property
    def type(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def timestamp(self) -> int:
        """CLOCK_REALTIME at publish, in nanoseconds."""
    @property
    def lost(self) -> int:
        """Messages this reader lost just before this one (overwrite topics)."""
    @property
    def deliveries(self) -> int:
        """Which delivery this is: 1 the first time, 2 the next... (acknowledging members;
        always 1 otherwise)."""
    @property
    def topic(self) -> str:
        """The name of the topic it was published to (a sink reads many)."""
    @property
    def valid(self) -> bool: ...
    def bytes(self) -> builtins.bytes:
        """A copy of the payload that outlives the message."""
    def __bytes__(self) -> builtins.bytes: ...
    def __len__(self) -> int: ...

@final
class Subscriber:
    """A reader of one topic: fan-out subscriber or group member. Iterable and
    async-iterable until closed. Not thread-safe: one per thread."""

    @property
    def topic(self) -> str: ...
    @property
    def group(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def policy(self) -> _Policy: ...
    @property
    def max_message(self) -> int: ...
    @property
    def lost(self) -> int:
        """Messages lost so far (overwrite topics)."""
    @property
    def received(self) -> int: ...
    @property
    def spin_us(self) -> int:
        """How long a recv spins before it sleeps, in microseconds (default 20)."""
    @spin_us.setter
    def spin_us(self, value: int) -> None: ...
    def recv(self, timeout: float | None = None) -> Message:
        """The next message, waiting up to timeout seconds (None: forever, 0: only look),
        then Timeout. Releases the previous message's data first; BufferError, consuming
        nothing, if a buffer of it is still alive."""
    def recv_batch(
        self, max_messages: int = 64, timeout: float | None = None
    ) -> list[Message]:
        """Up to max_messages messages, in order: the first waited for as recv() does
        (then Timeout), the rest only if already there. Every message of the batch is
        valid until the next recv of any kind or close, as one recv()'s message is (a
        buffer of any of them alive then: BufferError, nothing consumed); on a 'block'
        topic the batch holds its ring space until then. 'overwrite' topics give
        batches of one."""
    def recv_many(self, max_messages: int, timeout: float | None = None) -> list[bytes]:
        """Up to max_messages payloads (copies): the first waited for, the rest if there."""
    def recv_async(self, timeout: float | None = None) -> asyncio.Future[Message]:
        """An asyncio Future of the next message (await it). The event loop waits on
        fileno() (no thread; where there is no fd, a helper thread waits). Cancelling
        loses nothing."""
    def recv_batch_async(
        self, max_messages: int = 64, timeout: float | None = None
    ) -> asyncio.Future[list[Message]]:
        """recv_batch() for asyncio: a Future of a list of up to max_messages messages.
        Cancelling loses nothing: what came for a cancelled future goes to the next
        receives, in order."""
    def ack(self, msg: Message, /) -> None:
        """An acknowledging member is done with msg: never delivered again. Stale if it is
        not pending for this member any more; Error (EINVAL) if the subscriber does not
        acknowledge. May run while another thread or the asyncio helper waits in a recv."""
    def nack(self, msg: Message, delay_ms: int = 0) -> None:
        """Hand msg back for redelivery, to any member, not before delay_ms; after the
        group's max_deliver deliveries it goes to the dead-letter topic. Raises as ack()."""
    def fileno(self) -> int:
        """An fd readable when recv() would return a message (select, poll,
        loop.add_reader()). Edge-triggered: once readable, receive with timeout=0 until
        Timeout, which arms it again; it may be readable with nothing to receive. Owned by
        the subscriber; recv_async() registers it itself (do not add_reader() it too then).
        Unsupported where the kernel cannot (Linux before 6.7)."""
    def close(self) -> None: ...
    def __iter__(self) -> Subscriber: ...
    def __next__(self) -> Message: ...
    def __aiter__(self) -> Subscriber: ...
    def __anext__(self) -> asyncio.Future[Message]: ...
    def __enter__(self) -> Subscriber: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Sink:
    """One reader over many topics (Bus.sink()), by name or pattern, joined as they are
    created and left as they are removed. Iterable and async-iterable until closed (async:
    the loop waits on its fd, no thread). Not thread-safe (ack and nack excepted)."""

    @property
    def group(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def lost(self) -> int:
        """Messages lost so far (overwrite topics), over all topics."""
    @property
    def received(self) -> int: ...
    @property
    def filter(self) -> _Filter | None: ...
    def recv(self, timeout: float | None = None) -> Message:
        """The next message of any topic the sink reads (msg.topic names it), waiting up
        to timeout seconds (None: forever, 0: only look), then Timeout. Fair: a topic gives
        at most 16 in a row while another has some. Raises what the filter raised."""
    def recv_async(self, timeout: float | None = None) -> asyncio.Future[Message]:
        """An asyncio Future of the next message; the loop waits on fileno(). Cancelling
        loses nothing."""
    def fileno(self) -> int:
        """An fd readable when recv() would return a message (or the topics changed);
        edge-triggered as Subscriber.fileno(). The first call lets go of the message last
        received. Unsupported where the kernel cannot."""
    def add(self, pattern: str, /) -> int:
        """Read a topic, or every topic a pattern matches, now and from now on; returns
        how many it reads now because of it. Exists if added already. Lets go of the
        message last received."""
    def remove(self, pattern: str, /) -> None:
        """Stop reading what pattern (as added) names. NotFound if it was not added. Lets
        go of the message last received."""
    def topics(self) -> list[str]:
        """The names of the topics the sink reads now, sorted."""
    def ack(self, msg: Message, /) -> None:
        """An acknowledging sink is done with msg (a message it returned). Stale if it is
        not pending for it any more; Error (EINVAL) if the sink does not acknowledge."""
    def nack(self, msg: Message, delay_ms: int = 0) -> None:
        """Hand msg back for redelivery not before delay_ms. Raises as ack()."""
    def close(self) -> None: ...
    def __iter__(self) -> Sink: ...
    def __next__(self) -> Message: ...
    def __aiter__(self) -> Sink: ...
    def __anext__(self) -> asyncio.Future[Message]: ...
    def __enter__(self) -> Sink: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
