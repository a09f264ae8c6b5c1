#!/usr/bin/python3
"""A client for the Axon wire protocol (docs/wire.md), in Python.

It proves that the protocol can be spoken with a socket and a msgpack
library: it uses only the standard library and Debian's python3-msgpack.

    client.py PATH/TO/echo_server

It starts the echo server on a free port, connects, shakes hands, sends
messages to the actor named "echo" and checks the replies (u64 41 comes
back as 42, a string and bytes come back unchanged). It also checks that a
message to an unknown name comes back in a Status frame with AX_ENOTFOUND,
acknowledges what it receives, says Bye, and stops the server with SIGTERM.
Exit status: 0 on success, 1 on failure (with the reason on stderr), 77 when
msgpack is not installed (CTest reports the test as skipped).
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

try:
    import msgpack
except ImportError:
    print("client.py: SKIP: python3-msgpack is not installed for", sys.executable, file=sys.stderr)
    sys.exit(77)

# Frame header (section 3): body length, type, flags, status, reserved.
HEADER = struct.Struct(">IBBBB")
HELLO, DATA, STATUS, BYE, HEARTBEAT, ACK = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {HELLO: "Hello", DATA: "Data", STATUS: "Status", BYE: "Bye", HEARTBEAT: "Heartbeat", ACK: "Ack"}

AX_ENOTFOUND = 7  # status byte (section 10)
SER_BYTES, SER_STRING, SER_U64 = 1, 2, 3  # built-in serialiser ids (section 6)

# Path flags (section 5.2).
KIND_NAMED = 0x01
FAMILY_IPV6 = 0x04

STEP_TIMEOUT = 60.0  # seconds any one answer may take (a hang bound, not a speed bound)

# The address we announce in our Hello and use in our sender path. Nothing
# listens there: the server sends replies to that address over the
# connection we opened, because we announced it (section 6, "Replies").
MY_HOST, MY_PORT, MY_ID = "127.0.0.1", 1, 7


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def pack(obj):
    # bin for bytes, str for text: the protocol tells them apart.
    return msgpack.packb(obj, use_bin_type=True)


def ip_bytes(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.inet_pton(family, host)


def path(host, port, target):
    """[flags, ip, port, id or name]: named when target is a str."""
    flags = (KIND_NAMED if isinstance(target, str) else 0) | (FAMILY_IPV6 if ":" in host else 0)
    return [flags, ip_bytes(host), port, target]


def frame(ftype, body=b"", status=0):
    return HEADER.pack(len(body), ftype, 0, status, 0) + body


def unpack_all(body, count):
    """Exactly `count` msgpack objects filling body."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(body)
    try:
        objs = [unpacker.unpack() for _ in range(count)]
    except msgpack.OutOfData:
        raise Failure("a frame body ends inside a msgpack object")
    check(unpacker.tell() == len(body), "bytes left over after the msgpack objects of a frame body")
    return objs


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.data_received = 0  # Data frames received: what our Acks say
        self.last_ack = 0  # the server's latest Ack count

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """(type, status, body), or None when the server closed the connection."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            if len(self.buf) >= HEADER.size:
                length, ftype, flags, status, reserved = HEADER.unpack_from(self.buf)
                check(flags == 0 and reserved == 0, "reserved header bits are set")
                check(ftype in TYPE_NAMES, "unknown frame type %d" % ftype)
                if len(self.buf) >= HEADER.size + length:
                    body = bytes(self.buf[HEADER.size:HEADER.size + length])
                    del self.buf[:HEADER.size + length]
                    if ftype == ACK:
                        (count,) = unpack_all(body, 1)
                        check(isinstance(count, int) and count >= self.last_ack, "bad Ack %r" % (count,))
                        self.last_ack = count
                    elif ftype == DATA:
                        self.data_received += 1
                    return ftype, status, body
            left = deadline - time.monotonic()
            check(left > 0, "timed out waiting for a frame from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                check(not self.buf, "the connection closed in the middle of a frame")
                return None
            self.buf += chunk

    def next_frame(self, wanted):
        """The next frame of type `wanted`; Acks before it are taken in passing."""
        while True:
            got = self.read_frame()
            check(got is not None, "the server closed the connection, expecting a %s" % TYPE_NAMES[wanted])
            if got[0] == wanted:
                return got
            check(got[0] == ACK, "expected a %s, got a %s" % (TYPE_NAMES[wanted], TYPE_NAMES[got[0]]))

    def ack(self):
        self.send(frame(ACK, pack(self.data_received)))


def start_server(binary):
    proc = subprocess.Popen([binary, "--port", "0", "--seconds", "600"], stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], STEP_TIMEOUT)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("LISTENING "):
        proc.kill()
        raise Failure("echo_server did not print LISTENING (got %r)" % line)
    return proc, int(line.split()[1])


def handshake(conn, port):
    incarnation = int.from_bytes(os.urandom(8), "big") | 1  # never 0 (section 7)
    session = int.from_bytes(os.urandom(8), "big") | 1
    conn.send(frame(HELLO, pack(["axon", 1, [0, ip_bytes(MY_HOST), MY_PORT], incarnation, session])))
    _, _, body = conn.next_frame(HELLO)
    (hello,) = unpack_all(body, 1)
    check(isinstance(hello, list) and len(hello) == 5, "the Hello is not an array of 5")
    magic, version, address, their_incarnation, their_session = hello
    check(magic == "axon" and version == 1, "magic %r, version %r" % (magic, version))
    check(address == [0, ip_bytes("127.0.0.1"), port], "the server announced %r" % (address,))
    check(their_session == session, "the server answered with another session")
    check(their_incarnation != 0, "incarnation 0")
    print("handshake done: session %#x" % session)


def round_trip(conn, port, serialiser, value, expected):
    me = path(MY_HOST, MY_PORT, MY_ID)
    conn.send(frame(DATA, pack([path("127.0.0.1", port, "echo"), me, serialiser]) + pack(value)))
    _, status, body = conn.next_frame(DATA)
    check(status == 0, "a Data frame with status %d" % status)
    (dst, src, sid), payload = unpack_all(body, 2)
    check(dst == me, "the reply went to %r, not to our path" % (dst,))
    check(isinstance(src, list) and src[0] == 0 and src[1:3] == [ip_bytes("127.0.0.1"), port],
          "the reply's sender %r is not a unique path on the server" % (src,))
    check(sid == serialiser, "serialiser id %r came back as %r" % (serialiser, sid))
    check(payload == expected and type(payload) is type(expected),
          "sent %r, expected %r back, got %r" % (value, expected, payload))
    conn.ack()
    print("echo: %r -> %r" % (value if len(repr(value)) < 40 else type(value).__name__, payload
                              if len(repr(payload)) < 40 else "the same %d bytes" % len(payload)))


def not_found(conn, port, seq):
    body = pack([path("127.0.0.1", port, "nobody"), path(MY_HOST, MY_PORT, MY_ID), SER_U64]) + pack(41)
    conn.send(frame(DATA, body))
    _, status, status_body = conn.next_frame(STATUS)
    check(status == AX_ENOTFOUND, "status byte %d, expected %d (AX_ENOTFOUND)" % (status, AX_ENOTFOUND))
    (returned,) = unpack_all(status_body, 1)
    check(returned == [seq, body], "the Status body is %r, expected [%d, <the frame we sent>]" % (returned, seq))
    # The returned frame was received, so the Acks count it.
    while conn.last_ack < seq:
        conn.next_frame(ACK)
    print("nobody: returned in a Status frame with AX_ENOTFOUND, seq %d" % seq)


def say_bye(conn):
    conn.send(frame(BYE))
    _, _, body = conn.next_frame(BYE)
    check(body == b"", "a Bye with a body")
    conn.sock.close()
    print("bye exchanged")


def main():
    if len(sys.argv) != 2:
        print("usage: client.py PATH/TO/echo_server", file=sys.stderr)
        return 2
    proc = None
    try:
        proc, port = start_server(sys.argv[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        handshake(conn, port)
        round_trip(conn, port, SER_U64, 41, 42)
        round_trip(conn, port, SER_STRING, "h\u00e9llo, w\u00f6rld", "h\u00e9llo, w\u00f6rld")
        round_trip(conn, port, SER_BYTES, bytes(range(256)) * 4, bytes(range(256)) * 4)
        not_found(conn, port, 4)
        say_bye(conn)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STEP_TIMEOUT)
        proc = None
        check(code == 0, "echo_server exited with status %d" % code)
    except (Failure, OSError, subprocess.SubprocessError, ValueError) as e:
        print("client.py: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    print("interop: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
