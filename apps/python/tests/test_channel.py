"""The frame codec and the SCM_RIGHTS calls of prefork_wsgi.channel, on real socketpairs."""

import array
import os
import socket
import struct
import unittest

from prefork_wsgi import channel
from prefork_wsgi.channel import CONTROL, HANDBACK, HANDOFF, PROGRESS


def header(frame_type, payload_size, version=1, reserved=0):
    return struct.pack("=BBHI", frame_type, version, reserved, payload_size)


def open_fds():
    return set(os.listdir("/proc/self/fd"))


class CodecTest(unittest.TestCase):
    def test_header_layout_is_native_and_8_bytes(self):
        data = channel.encode_frame(CONTROL, b"{}")
        self.assertEqual(data[:8], struct.pack("=BBHI", 3, 1, 0, 2))
        self.assertEqual(len(data), 10)
        self.assertEqual(channel.HEADER_BYTES, 8)

    def test_round_trips(self):
        cases = [
            (HANDOFF, channel.encode_indices([0, 7, 2 ** 32 - 1]), 3),
            (HANDBACK, channel.encode_indices([1]), 1),
            (PROGRESS, channel.encode_progress(5, 3, 2 ** 64 - 1), 0),
            (CONTROL, channel.encode_control("heartbeat", open=1, served=2), 0),
        ]
        for frame_type, payload, fds in cases:
            with self.subTest(frame_type=frame_type):
                data = channel.encode_frame(frame_type, payload, fds)
                self.assertEqual(channel.decode_frame(data, fds), (frame_type, payload))
        self.assertEqual(channel.decode_progress(channel.encode_progress(5, 3, 9)), (5, 3, 9))
        self.assertEqual(channel.decode_indices(channel.encode_indices([4, 0])), [4, 0])

    def test_largest_frame(self):
        payload = b"x" * (channel.MAX_FRAME_BYTES - 8)
        self.assertEqual(channel.decode_frame(channel.encode_frame(CONTROL, payload))[1], payload)
        with self.assertRaises(channel.FrameError):
            channel.encode_frame(CONTROL, payload + b"x")
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(header(CONTROL, len(payload) + 1) + payload + b"x")

    def test_malformed_headers(self):
        bad = {
            "empty": b"",
            "short": header(CONTROL, 2)[:7],
            "wrong version": header(CONTROL, 2, version=2) + b"{}",
            "version 0": header(CONTROL, 2, version=0) + b"{}",
            "reserved set": header(CONTROL, 2, reserved=1) + b"{}",
            "unknown type 0": header(0, 2) + b"{}",
            "unknown type 5": header(5, 2) + b"{}",
            "payload_size too big (truncated payload)": header(CONTROL, 10) + b"{}",
            "payload_size too small": header(CONTROL, 1) + b"{}",
            "truncated progress": header(PROGRESS, 24) + b"\0" * 16,
            "progress of 16 bytes": header(PROGRESS, 16) + b"\0" * 16,
            "empty control": header(CONTROL, 0),
        }
        for name, data in bad.items():
            with self.subTest(name):
                with self.assertRaises(channel.FrameError):
                    channel.decode_frame(data, 0)

    def test_descriptor_shapes(self):
        # Descriptors on a type that takes none, or a count that disagrees with the indices.
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(channel.encode_frame(CONTROL, b"{}"), 1)
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(channel.encode_frame(PROGRESS, channel.encode_progress(0, 0, 0)), 1)
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(header(HANDOFF, 8) + b"\0" * 8, 1)
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(header(HANDOFF, 0), 0)
        with self.assertRaises(channel.FrameError):
            channel.decode_frame(header(HANDOFF, 33 * 4) + b"\0" * 132, 33)
        with self.assertRaises(channel.FrameError):
            channel.encode_frame(HANDBACK, b"", 0)

    def test_control_messages(self):
        text = channel.encode_control("ready", id=3, generation=2, pid=1234)
        self.assertEqual(text, b'{"type":"ready","id":3,"generation":2,"pid":1234}')
        self.assertEqual(channel.decode_control(text)["pid"], 1234)
        self.assertEqual(channel.decode_control(b'{"type":"drain"}'), {"type": "drain"})
        for bad in (b"not json", b"[1]", b'"drain"', b'{"type":"explode"}', b'{"kind":"drain"}',
                    b'{"type":"heartbeat","open":1}', b'{"type":"heartbeat","open":-1,"served":0}',
                    b'{"type":"heartbeat","open":1.5,"served":0}', b'{"type":"ready","id":true,"generation":1,"pid":1}',
                    b"\xff\xfe"):
            with self.subTest(bad):
                with self.assertRaises(channel.FrameError):
                    channel.decode_control(bad)
        with self.assertRaises(channel.FrameError):
            channel.encode_control("heartbeat", open=-1, served=0)


class SocketTest(unittest.TestCase):
    def setUp(self):
        self.a, self.b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)
        self.b.setblocking(False)

    def test_handoff_with_descriptors(self):
        left, right = socket.socketpair()
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        channel.send_frame(self.a, HANDOFF, channel.encode_indices([2]), [right.fileno()])
        frame = channel.recv_frame(self.b)
        self.assertEqual(frame.type, HANDOFF)
        self.assertEqual(channel.decode_indices(frame.payload), [2])
        self.assertEqual(len(frame.fds), 1)
        received = socket.socket(fileno=frame.fds[0])
        self.addCleanup(received.close)
        self.assertFalse(received.get_inheritable())  # MSG_CMSG_CLOEXEC
        received.sendall(b"ping")
        self.assertEqual(left.recv(4), b"ping")

    def test_thirty_two_descriptors(self):
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(32)]
        try:
            channel.send_frame(self.a, HANDOFF, channel.encode_indices(range(32)), fds)
        finally:
            for fd in fds:
                os.close(fd)
        frame = channel.recv_frame(self.b)
        self.assertEqual(len(frame.fds), 32)
        frame.close_fds()

    def test_would_block_and_eof(self):
        with self.assertRaises(BlockingIOError):
            channel.recv_frame(self.b)
        self.a.close()
        with self.assertRaises(channel.ChannelClosed):
            channel.recv_frame(self.b)

    def test_zero_length_message_is_malformed_not_eof(self):
        self.a.send(b"")
        with self.assertRaises(channel.FrameError):
            channel.recv_frame(self.b)

    def test_descriptors_on_a_control_frame_are_closed(self):
        before = open_fds()
        fd = os.open("/dev/null", os.O_RDONLY)
        data = channel.encode_frame(CONTROL, b'{"type":"drain"}')
        self.a.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())])
        os.close(fd)
        with self.assertRaises(channel.FrameError):
            channel.recv_frame(self.b)
        self.assertEqual(open_fds(), before)

    def test_wrong_version_on_the_wire(self):
        self.a.send(header(CONTROL, 2, version=2) + b"{}")
        with self.assertRaises(channel.FrameError):
            channel.recv_frame(self.b)

    def test_more_than_32_descriptors_are_truncated_and_closed(self):
        before = open_fds()
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(33)]
        data = header(HANDOFF, 33 * 4) + b"\0" * 132
        self.a.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
        for fd in fds:
            os.close(fd)
        with self.assertRaises(channel.FrameTruncated):
            channel.recv_frame(self.b)
        self.assertEqual(open_fds(), before)

    def test_oversized_message_is_truncated(self):
        self.a.send(header(CONTROL, 70000) + b"x" * 70000)
        with self.assertRaises(channel.FrameTruncated):
            channel.recv_frame(self.b)

    def test_send_refuses_malformed_frames(self):
        with self.assertRaises(channel.FrameError):
            channel.send_frame(self.a, CONTROL, b"{}", [0])
        with self.assertRaises(channel.FrameError):
            channel.send_frame(self.a, HANDOFF, channel.encode_indices([1, 2]), [0])
        with self.assertRaises(BlockingIOError):
            channel.recv_frame(self.b)  # nothing was sent

    def test_send_would_block_when_full(self):
        self.a.setblocking(False)
        with self.assertRaises(BlockingIOError):
            for _ in range(100000):
                channel.send_frame(self.a, CONTROL, b"x" * 60000)


if __name__ == "__main__":
    unittest.main()
