"""The master <-> worker channel, protocol version 1 (lib/PROTOCOL.md).

One frame per SOCK_SEQPACKET message: an 8-byte header {uint8 type; uint8 version;
uint16 reserved; uint32 payload_size} in native byte order, the payload, and up to
MAX_FDS_PER_FRAME descriptors (SCM_RIGHTS). This module is the codec and the two
non-blocking calls that move frames; it keeps no state and never logs.
"""

import array
import json
import os
import select
import socket
import struct

PROTOCOL_VERSION = 1

HANDOFF = 1   # master -> worker: client descriptors, one uint32 listener_index each
PROGRESS = 2  # worker -> master: cumulative counters received/closed/requests
CONTROL = 3   # both ways: one JSON object, no descriptors
HANDBACK = 4  # worker -> master: idle keep-alive descriptors, one listener_index each

FRAME_TYPES = (HANDOFF, PROGRESS, CONTROL, HANDBACK)
TYPE_NAMES = {HANDOFF: "handoff", PROGRESS: "progress", CONTROL: "control", HANDBACK: "handback"}

HEADER = struct.Struct("=BBHI")
PROGRESS_PAYLOAD = struct.Struct("=QQQ")
INDEX = struct.Struct("=I")
HEADER_BYTES = HEADER.size  # 8
MAX_FRAME_BYTES = 65536  # header + payload
MAX_FDS_PER_FRAME = 32

# Control messages and the fields each must carry (non-negative integers).
CONTROL_FIELDS = {
    "ready": ("id", "generation", "pid"),  # worker -> master
    "heartbeat": ("open", "served"),  # worker -> master
    "draining": (),  # worker -> master
    "reopen_logs": (),  # master -> worker
    "drain": (),  # master -> worker
}

_ANCILLARY_SPACE = socket.CMSG_SPACE(MAX_FDS_PER_FRAME * INDEX.size)
_UINT64_MAX = 2 ** 64 - 1


class FrameError(ValueError):
    """A message that breaks the protocol (the C++ side's errc::frame_malformed)."""


class FrameTruncated(FrameError):
    """MSG_TRUNC or MSG_CTRUNC: a message or its descriptors did not arrive whole.

    Every descriptor that did arrive is already closed. For a well-formed handoff or
    handback, `frame_type` is set and `lost_fds` says how many descriptors were sent: the
    receiver must count them as received (and closed), or the sender never settles.
    """

    def __init__(self, message, frame_type=None, lost_fds=0):
        super().__init__(message)
        self.frame_type = frame_type
        self.lost_fds = lost_fds


class ChannelClosed(EOFError):
    """The peer closed its end of the channel (orderly EOF)."""


class Frame:
    """A received frame. The receiver owns `fds` and must take or close each one."""

    __slots__ = ("type", "payload", "fds")

    def __init__(self, frame_type, payload, fds=()):
        self.type = frame_type
        self.payload = payload
        self.fds = list(fds)

    def close_fds(self):
        _close_all(self.fds)
        self.fds = []

    def __repr__(self):
        return "Frame(%s, %r, fds=%r)" % (TYPE_NAMES.get(self.type, self.type), bytes(self.payload), self.fds)


def shape_is_valid(frame_type, payload_size, fd_count):
    """The per-type rules both ends apply (channel.cpp's shape_is_valid)."""
    if fd_count > MAX_FDS_PER_FRAME or payload_size > MAX_FRAME_BYTES - HEADER_BYTES:
        return False
    if frame_type in (HANDOFF, HANDBACK):
        return fd_count >= 1 and payload_size == fd_count * INDEX.size
    if frame_type == PROGRESS:
        return fd_count == 0 and payload_size == PROGRESS_PAYLOAD.size
    if frame_type == CONTROL:
        return fd_count == 0 and payload_size > 0
    return False


def encode_frame(frame_type, payload, fd_count=0):
    """Header + payload as one bytes object; FrameError if the frame breaks the rules."""
    payload = bytes(payload)
    if not shape_is_valid(frame_type, len(payload), fd_count):
        raise FrameError("refusing to encode a malformed %s frame (%d bytes, %d descriptors)"
                         % (TYPE_NAMES.get(frame_type, frame_type), len(payload), fd_count))
    return HEADER.pack(frame_type, PROTOCOL_VERSION, 0, len(payload)) + payload


def decode_frame(message, fd_count=0):
    """(type, payload) of one message that arrived with `fd_count` descriptors.

    Checks what channel.cpp's decode_frame checks: the size, version 1, reserved 0,
    payload_size equal to the rest, a known type, and the per-type shape.
    """
    message = memoryview(message)
    if len(message) < HEADER_BYTES:
        raise FrameError("message of %d bytes is shorter than the header" % len(message))
    if len(message) > MAX_FRAME_BYTES:
        raise FrameError("message of %d bytes is over %d" % (len(message), MAX_FRAME_BYTES))
    frame_type, version, reserved, payload_size = HEADER.unpack_from(message)
    if version != PROTOCOL_VERSION:
        raise FrameError("protocol version %d, expected %d" % (version, PROTOCOL_VERSION))
    if reserved != 0:
        raise FrameError("reserved field is %d, expected 0" % reserved)
    if payload_size != len(message) - HEADER_BYTES:
        raise FrameError("payload_size %d but %d bytes follow the header" % (payload_size, len(message) - HEADER_BYTES))
    if frame_type not in FRAME_TYPES:
        raise FrameError("unknown frame type %d" % frame_type)
    if not shape_is_valid(frame_type, payload_size, fd_count):
        raise FrameError("malformed %s frame (%d payload bytes, %d descriptors)"
                         % (TYPE_NAMES[frame_type], payload_size, fd_count))
    return frame_type, bytes(message[HEADER_BYTES:])


def encode_progress(received, closed, requests):
    return PROGRESS_PAYLOAD.pack(received, closed, requests)


def decode_progress(payload):
    if len(payload) != PROGRESS_PAYLOAD.size:
        raise FrameError("progress payload of %d bytes, expected %d" % (len(payload), PROGRESS_PAYLOAD.size))
    return PROGRESS_PAYLOAD.unpack(payload)


def encode_indices(listener_indices):
    return b"".join(INDEX.pack(i) for i in listener_indices)


def decode_indices(payload):
    if len(payload) % INDEX.size:
        raise FrameError("listener index payload of %d bytes" % len(payload))
    return [value for (value,) in INDEX.iter_unpack(payload)]


def encode_control(kind, **fields):
    """One control message as compact JSON text: {"type":"ready","id":1,...}."""
    if kind not in CONTROL_FIELDS:
        raise FrameError("unknown control message %r" % kind)
    message = {"type": kind}
    for name in CONTROL_FIELDS[kind]:
        value = fields[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT64_MAX:
            raise FrameError("%s.%s must be an integer in [0, 2^64), got %r" % (kind, name, value))
        message[name] = value
    return json.dumps(message, separators=(",", ":")).encode()


def decode_control(payload):
    """The control message as a dict with a known "type" and its required fields;
    FrameError for anything else (worker_message.cpp's decode_worker_message)."""
    try:
        message = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FrameError("control payload is not JSON: %s" % error) from None
    if not isinstance(message, dict):
        raise FrameError("control payload is not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in CONTROL_FIELDS:
        raise FrameError("unknown control message type %r" % (kind,))
    for name in CONTROL_FIELDS[kind]:
        value = message.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _UINT64_MAX:
            raise FrameError("control message %s: %r must be a non-negative integer, got %r" % (kind, name, value))
    return message


def send_frame(sock, frame_type, payload=b"", fds=()):
    """Sends one frame with one sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT).

    Raises FrameError (nothing sent) for a malformed frame, BlockingIOError when the
    channel is full (nothing sent: wait until it is writable and call again), another
    OSError when the peer is gone (EPIPE, ECONNRESET). The caller keeps its descriptors;
    the peer receives duplicates.
    """
    data = encode_frame(frame_type, payload, len(fds))
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    sent = sock.sendmsg([data], ancillary, socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
    if sent != len(data):  # a SEQPACKET message goes out whole or not at all
        raise FrameTruncated("sendmsg sent %d of %d bytes" % (sent, len(data)))


def recv_frame(sock):
    """Receives one frame with one recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT).

    Returns a Frame whose descriptors (close-on-exec) the caller owns. Raises
    BlockingIOError when nothing is there, ChannelClosed on EOF, FrameTruncated (see
    there), FrameError for a malformed frame, another OSError from recvmsg. On every
    error, whatever descriptors arrived are closed.
    """
    message, ancillary, flags, _ = sock.recvmsg(
        MAX_FRAME_BYTES, _ANCILLARY_SPACE, socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(data[:len(data) - len(data) % received.itemsize])
            fds.extend(received)
    overflow = len(fds) > MAX_FDS_PER_FRAME
    if overflow or flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        _close_all(fds)
        if not overflow and not flags & socket.MSG_TRUNC and len(message) >= HEADER_BYTES:
            # Out of descriptors (EMFILE): a well-formed handoff/handback still says how
            # many were sent, one listener_index each.
            sent = (len(message) - HEADER_BYTES) // INDEX.size
            try:
                frame_type, _ = decode_frame(message, sent)
            except FrameError:
                frame_type = None
            if frame_type in (HANDOFF, HANDBACK):
                raise FrameTruncated("descriptors lost (MSG_CTRUNC)", frame_type, sent)
        raise FrameTruncated("message or descriptors truncated (flags 0x%x)" % flags)
    if not message and not fds and _peer_has_closed(sock):
        raise ChannelClosed("the peer closed the channel")
    try:
        frame_type, payload = decode_frame(message, len(fds))
    except FrameError:
        _close_all(fds)
        raise
    return Frame(frame_type, payload, fds)


def _peer_has_closed(sock):
    # recvmsg returned 0 bytes: EOF, or a zero-length message from a live peer.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP) for _, events in poller.poll(0))


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
