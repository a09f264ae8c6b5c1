#!/usr/bin/python3
"""A client for the Axon wire protocol, version 2 (docs/wire.md), in Python.

It proves that the protocol can be spoken with a socket, a msgpack library
and HMAC-SHA-256: it uses only the standard library (hmac, hashlib) and
Debian's python3-msgpack.

    client.py PATH/TO/echo_server [--client-only] [--auth | --cookie-file PATH] [--two-clients]

It starts the echo server on a free port, connects, shakes hands, sends
messages to the actor named "echo" and checks the replies (u64 41 comes
back as 42, a string and bytes come back unchanged). It also checks that a
message to an unknown name comes back in a Status frame with AX_ENOTFOUND,
acknowledges what it receives, sends Heartbeats when it is quiet, says Bye,
stops the server with SIGTERM and checks the counters the server prints.

  --cookie-file PATH  the server and the client share the secret in PATH
                      (a file only its owner may read); the handshake
                      proves it both ways (section 7.3). The environment
                      variable AXON_COOKIE_FILE does the same.
  --auth              the same with a fresh random secret in a temporary
                      file, and a second connection with a wrong secret
                      must be refused.
  --client-only       say "I do not listen" with the CLIENT flag of the Hello
                      (section 6, "Clients"), announce 0.0.0.0 port 0 and send
                      from tcp://0.0.0.0:0#7: the replies come back on our
                      connection whatever other clients announce. This is
                      the recommended way for a client that does not listen.
                      Without it we announce 127.0.0.1:1 and are known by it.
  --two-clients       first, two CLIENT clients at once, in two threads, that
                      announce the same address and use the same sender path:
                      both are served, and each gets exactly its own replies.
                      Then two clients without CLIENT that announce the same
                      address: the second is refused (section 11) while the
                      first keeps working; with distinct addresses both work.

Exit status: 0 on success, 1 on failure (with the reason on stderr), 77 when
msgpack is not installed (CTest reports the test as skipped).
"""

import hashlib
import hmac
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

try:
    import msgpack
except ImportError:
    print("client.py: SKIP: python3-msgpack is not installed for", sys.executable, file=sys.stderr)
    sys.exit(77)

VERSION = 2
# Frame header (section 3): body length, type, flags, status, reserved.
HEADER = struct.Struct(">IBBBB")
HELLO, DATA, STATUS, BYE, HEARTBEAT, ACK, AUTH = 1, 2, 3, 4, 5, 6, 7
TYPE_NAMES = {HELLO: "Hello", DATA: "Data", STATUS: "Status", BYE: "Bye", HEARTBEAT: "Heartbeat", ACK: "Ack",
              AUTH: "Auth"}
HELLO_AUTH = 0x1  # Hello flag bit 0 (section 7.1)
HELLO_CLIENT = 0x2  # Hello flag bit 1: we do not listen (section 6, "Clients")
PROOF_LABEL = b"axon-auth-2"
ROLE_INITIATOR, ROLE_ACCEPTOR = b"\x01", b"\x02"

AX_ENOTFOUND = 7  # status byte (section 10)
SER_BYTES, SER_STRING, SER_U64 = 1, 2, 3  # built-in serialiser ids (section 6)

# Path flags (section 5.2).
KIND_NAMED = 0x01
FAMILY_IPV6 = 0x04

STEP_TIMEOUT = 60.0  # seconds any one answer may take (a hang bound, not a speed bound)
HEARTBEAT_EVERY = 1.0  # send a Heartbeat after this long without writing (section 13)
MY_MAX_FRAME = 1 << 20  # the largest frame we accept, announced in our Hello

# The address we announce in our Hello and use in our sender path. Nothing
# listens there: the server sends replies to that address over the
# connection we opened, because we announced it (section 6, "Replies").
# Every client connected at the same time needs its own (section 2).
MY_HOST, MY_PORT, MY_ID = "127.0.0.1", 1, 7
# With --client-only (the CLIENT flag, section 6, "Clients"), the address
# identifies nothing: the server knows us by our connection. We announce
# 0.0.0.0 port 0, as the spec recommends, and any number of us may connect.
CLIENT_HOST, CLIENT_PORT = "0.0.0.0", 0


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


def read_secret(path_):
    """The secret in a cookie file, white space around it dropped (section 7.3)."""
    with open(path_, "rb") as f:
        secret = f.read().strip()
    check(0 < len(secret) <= 255, "the cookie file %s holds no usable secret" % path_)
    return secret


def proof(secret, role, hello_i_body, hello_a_body):
    """HMAC-SHA-256(secret, "axon-auth-2" || role || Hello_I body || Hello_A body)."""
    return hmac.new(secret, PROOF_LABEL + role + hello_i_body + hello_a_body, hashlib.sha256).digest()


class Connection:
    def __init__(self, port, me_port=MY_PORT, client_only=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port
        self.client_only = client_only
        self.me_host = CLIENT_HOST if client_only else MY_HOST
        self.me_port = CLIENT_PORT if client_only else me_port
        self.me = path(self.me_host, self.me_port, MY_ID)  # our sender path
        self.buf = bytearray()
        self.data_received = 0  # Data frames received: what our Acks say
        self.last_ack = 0  # the server's latest Ack count
        self.peer_max_frame = 64  # until the server's Hello says more
        self.last_send = time.monotonic()
        self.heartbeats_sent = 0
        self.open = False

    def send(self, data):
        check(not self.open or len(data) <= self.peer_max_frame,
              "a frame of %d bytes is above the server's limit of %d" % (len(data), self.peer_max_frame))
        self.sock.sendall(data)
        self.last_send = time.monotonic()

    def keepalive(self):
        """A Heartbeat when we have written nothing for a second (section 13)."""
        if self.open and time.monotonic() - self.last_send >= HEARTBEAT_EVERY:
            self.send(frame(HEARTBEAT))
            self.heartbeats_sent += 1

    def read_frame(self):
        """(type, status, body), or None when the server closed the connection."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            if len(self.buf) >= HEADER.size:
                length, ftype, flags, status, reserved = HEADER.unpack_from(self.buf)
                check(flags == 0 and reserved == 0, "reserved header bits are set")
                check(ftype in TYPE_NAMES, "unknown frame type %d" % ftype)
                check(HEADER.size + length <= MY_MAX_FRAME, "a frame above the limit we announced")
                if len(self.buf) >= HEADER.size + length:
                    body = bytes(self.buf[HEADER.size:HEADER.size + length])
                    del self.buf[:HEADER.size + length]
                    if ftype == ACK:
                        (count,) = unpack_all(body, 1)
                        check(isinstance(count, int) and count >= self.last_ack, "bad Ack %r" % (count,))
                        self.last_ack = count
                    elif ftype == DATA:
                        self.data_received += 1
                    elif ftype == HEARTBEAT:
                        check(self.open, "a Heartbeat before the handshake")
                    return ftype, status, body
            now = time.monotonic()
            left = deadline - now
            check(left > 0, "timed out waiting for a frame from the server")
            self.keepalive()
            self.sock.settimeout(min(left, HEARTBEAT_EVERY))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                check(not self.buf, "the connection closed in the middle of a frame")
                return None
            self.buf += chunk

    def next_frame(self, wanted):
        """The next frame of type `wanted`; Acks and Heartbeats before it are taken in passing."""
        while True:
            got = self.read_frame()
            check(got is not None, "the server closed the connection, expecting a %s" % TYPE_NAMES[wanted])
            if got[0] == wanted:
                return got
            check(got[0] in (ACK, HEARTBEAT),
                  "expected a %s, got a %s" % (TYPE_NAMES[wanted], TYPE_NAMES[got[0]]))

    def expect_closed(self, what):
        """The server must close the connection without sending a single frame."""
        got = self.read_frame()
        check(got is None, "%s: expected a close without a reply, got a %s" % (what, TYPE_NAMES[got[0]]
                                                                              if got else ""))
        self.sock.close()

    def ack(self):
        self.send(frame(ACK, pack(self.data_received)))

    def close(self):
        self.sock.close()


def start_server(binary, cookie_file=None):
    args = [binary, "--port", "0", "--seconds", "600"]
    if cookie_file is not None:
        args += ["--cookie-file", cookie_file]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], STEP_TIMEOUT)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("LISTENING "):
        proc.kill()
        proc.wait()
        raise Failure("echo_server did not print LISTENING (got %r)" % line)
    return proc, int(line.split()[1])


def stop_server(proc):
    """SIGTERM, exit status 0, and the counters of its STATS line."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    check(proc.returncode == 0, "echo_server exited with status %d" % proc.returncode)
    for line in out.decode().splitlines():
        if line.startswith("STATS "):
            return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
    raise Failure("echo_server printed no STATS line")


def send_hello(conn, secret):
    """Our Hello (section 7.1); its body, as sent, for the proofs."""
    incarnation = int.from_bytes(os.urandom(8), "big") | 1  # never 0
    session = int.from_bytes(os.urandom(8), "big") | 1  # never 0
    flags = (HELLO_AUTH if secret is not None else 0) | (HELLO_CLIENT if conn.client_only else 0)
    body = pack(["axon", VERSION, [0, ip_bytes(conn.me_host), conn.me_port], incarnation, session, flags,
                 MY_MAX_FRAME, os.urandom(32), 0])
    conn.send(frame(HELLO, body))
    return body, session, flags


def handshake(conn, secret=None):
    """Sections 7.2 and 7.3: Hello both ways, then with a secret Auth both ways."""
    hello_i, session, flags = send_hello(conn, secret)
    _, _, hello_a = conn.next_frame(HELLO)
    (hello,) = unpack_all(hello_a, 1)
    check(isinstance(hello, list) and len(hello) == 9, "the Hello is not an array of 9")
    magic, version, address, incarnation, their_session, their_flags, max_frame, nonce, path_ids = hello
    check(magic == "axon" and version == VERSION, "magic %r, version %r" % (magic, version))
    check(address == [0, ip_bytes("127.0.0.1"), conn.port], "the server announced %r" % (address,))
    check(their_session == session, "the server answered with another session")
    check(isinstance(incarnation, int) and incarnation != 0, "incarnation %r" % (incarnation,))
    # An acceptor never sets CLIENT; its AUTH flag must equal ours (section 7.4).
    check(their_flags == flags & HELLO_AUTH, "the server's flags are %r, ours %r (sections 7.1, 7.4)"
          % (their_flags, flags))
    check(isinstance(max_frame, int) and max_frame >= 64, "max_frame %r" % (max_frame,))
    check(isinstance(nonce, bytes) and len(nonce) == 32, "the nonce is not a bin of 32 bytes")
    # Section 6.1: Axon offers path ids (1024 by default). This client may
    # ignore the offer: full paths are always valid, and since our own Hello
    # offers 0, Axon sends us full paths too.
    check(isinstance(path_ids, int) and path_ids >= 0, "path_ids %r is not a uint" % (path_ids,))
    conn.peer_max_frame = max_frame
    if secret is not None:
        conn.send(frame(AUTH, pack(proof(secret, ROLE_INITIATOR, hello_i, hello_a))))
        _, _, body = conn.next_frame(AUTH)
        (theirs,) = unpack_all(body, 1)
        check(isinstance(theirs, bytes) and
              hmac.compare_digest(theirs, proof(secret, ROLE_ACCEPTOR, hello_i, hello_a)),
              "the server's proof is wrong")
    conn.open = True
    print("handshake done: session %#x%s%s, the server accepts frames up to %d bytes"
          % (session, ", secret proven both ways" if secret is not None else "",
             ", as a CLIENT" if conn.client_only else "", max_frame))


def round_trip(conn, serialiser, value, expected):
    conn.send(frame(DATA, pack([path("127.0.0.1", conn.port, "echo"), conn.me, serialiser]) + pack(value)))
    _, status, body = conn.next_frame(DATA)
    check(status == 0, "a Data frame with status %d" % status)
    (dst, src, sid), payload = unpack_all(body, 2)
    check(dst == conn.me, "the reply went to %r, not to our path" % (dst,))
    check(isinstance(src, list) and src[0] == 0 and src[1:3] == [ip_bytes("127.0.0.1"), conn.port],
          "the reply's sender %r is not a unique path on the server" % (src,))
    check(sid == serialiser, "serialiser id %r came back as %r" % (serialiser, sid))
    check(payload == expected and type(payload) is type(expected),
          "sent %r, expected %r back, got %r" % (value, expected, payload))
    conn.ack()
    print("echo: %r -> %r" % (value if len(repr(value)) < 40 else type(value).__name__, payload
                              if len(repr(payload)) < 40 else "the same %d bytes" % len(payload)))


def not_found(conn, seq):
    body = pack([path("127.0.0.1", conn.port, "nobody"), conn.me, SER_U64]) + pack(41)
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
    """Section 12: Bye, then read (acking any Data) until the server's Bye, then close."""
    conn.send(frame(BYE))
    while True:
        got = conn.read_frame()
        check(got is not None, "the server closed the connection before its Bye")
        ftype, _, body = got
        if ftype == BYE:
            check(body == b"", "a Bye with a body")
            break
        if ftype == DATA:
            conn.ack()
    conn.close()
    print("bye exchanged")


def idle(conn, seconds):
    """Quiet for `seconds` but for Heartbeats both ways (section 13): ours
    when we have written nothing for a second, the server's likewise."""
    end = time.monotonic() + seconds
    sent, seen = conn.heartbeats_sent, 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        conn.keepalive()
        ready, _, _ = select.select([conn.sock], [], [], min(end - now, HEARTBEAT_EVERY / 4))
        if ready:
            got = conn.read_frame()
            check(got is not None and got[0] == HEARTBEAT, "an idle connection got %r"
                  % (TYPE_NAMES[got[0]] if got else "closed",))
            seen += 1
    check(seen >= 1, "the server sent no Heartbeat in %.1f s of quiet" % seconds)
    sent = conn.heartbeats_sent - sent
    check(sent >= 1, "we sent no Heartbeat in %.1f s of quiet" % seconds)
    print("idle %.1f s: sent %d Heartbeats, received %d" % (seconds, sent, seen))


def session(port, secret, client_only):
    conn = Connection(port, client_only=client_only)
    handshake(conn, secret)
    round_trip(conn, SER_U64, 41, 42)
    round_trip(conn, SER_STRING, "h\u00e9llo, w\u00f6rld", "h\u00e9llo, w\u00f6rld")
    idle(conn, HEARTBEAT_EVERY * 2.5)
    round_trip(conn, SER_BYTES, bytes(range(256)) * 4, bytes(range(256)) * 4)
    not_found(conn, 4)
    say_bye(conn)


def wrong_secret(port, secret):
    """A proof with another secret: closed without a reply, no Auth back."""
    conn = Connection(port, me_port=2)
    hello_i, _, _ = send_hello(conn, secret)
    _, _, hello_a = conn.next_frame(HELLO)
    conn.send(frame(AUTH, pack(proof(secret + b"!", ROLE_INITIATOR, hello_i, hello_a))))
    conn.expect_closed("a proof with the wrong secret")
    print("wrong secret: refused without a reply")


def pipelined(conn, first, count):
    """`count` u64s first, first+1, ... to echo without waiting, then their
    replies: each must be ours, value + 1, in the order we sent them."""
    for i in range(count):
        conn.send(frame(DATA, pack([path("127.0.0.1", conn.port, "echo"), conn.me, SER_U64]) + pack(first + i)))
    for i in range(count):
        _, status, body = conn.next_frame(DATA)
        check(status == 0, "a Data frame with status %d" % status)
        (dst, _, sid), payload = unpack_all(body, 2)
        check(dst == conn.me and sid == SER_U64, "a reply to %r, serialiser %r" % (dst, sid))
        check(payload == first + i + 1, "expected %d back, got %r: another client's reply?"
              % (first + i + 1, payload))
    conn.ack()


def two_client_only(port):
    """Section 6, "Clients": two CLIENTs at once, one announced address, one
    sender path. Each runs in its own thread; both are connected before
    either sends, and each gets exactly its own replies."""
    rounds, batch = 5, 20
    conns = [Connection(port, client_only=True) for _ in range(2)]
    for conn in conns:
        handshake(conn)
    ready = threading.Barrier(2, timeout=STEP_TIMEOUT)
    errors = []

    def run(k, conn):
        try:
            ready.wait()
            for r in range(rounds):
                pipelined(conn, (k + 1) * 100000 + r * batch, batch)
            say_bye(conn)
        except (Failure, OSError, threading.BrokenBarrierError) as e:
            errors.append("CLIENT %d: %s" % (k, e))

    threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(STEP_TIMEOUT * 2)
        check(not t.is_alive(), "a CLIENT thread hangs")
    check(not errors, "; ".join(errors))
    print("two CLIENTs announcing 0.0.0.0:0 at once: each got its own %d replies" % (rounds * batch))


def two_clients(port):
    """Section 11: one address, one connection; distinct addresses, both served."""
    first = Connection(port)
    handshake(first)
    round_trip(first, SER_U64, 1, 2)
    second = Connection(port)  # the same announced address, 127.0.0.1:1
    send_hello(second, None)
    second.expect_closed("a second client announcing the same address")
    print("second client with the same address: refused without a reply")
    round_trip(first, SER_U64, 2, 3)
    third = Connection(port, me_port=2)  # its own address
    handshake(third)
    round_trip(third, SER_U64, 3, 4)
    round_trip(first, SER_U64, 4, 5)
    say_bye(third)
    say_bye(first)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print("usage: client.py PATH/TO/echo_server [--client-only] [--auth | --cookie-file PATH] [--two-clients]",
              file=sys.stderr)
        return 2
    binary, options = args[0], args[1:]
    cookie_file = os.environ.get("AXON_COOKIE_FILE") or None
    auth = "--auth" in options
    two = "--two-clients" in options
    client_only = "--client-only" in options
    if "--cookie-file" in options:
        i = options.index("--cookie-file")
        if i + 1 >= len(options):
            print("client.py: --cookie-file needs a path", file=sys.stderr)
            return 2
        cookie_file = options[i + 1]
    proc = None
    tmp = None
    try:
        if auth and cookie_file is None:
            tmp = tempfile.TemporaryDirectory(prefix="axon-interop-")
            cookie_file = os.path.join(tmp.name, "cookie")
            fd = os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(24).hex().encode() + b"\n")
            os.close(fd)
        if two and (auth or cookie_file is not None):
            raise Failure("--two-clients runs without a secret: with one, the second client's proof "
                          "would replace the first (section 11)")
        secret = read_secret(cookie_file) if cookie_file is not None else None
        proc, port = start_server(binary, cookie_file)
        if two:
            two_client_only(port)
            two_clients(port)
        else:
            session(port, secret, client_only)
            if secret is not None:
                wrong_secret(port, secret)
        stats = stop_server(proc)
        proc = None
        print("server counters: %s" % " ".join("%s=%d" % kv for kv in sorted(stats.items())))
        check(stats["malformed"] == 0, "the server counted malformed input")
        check(stats["heartbeat_timeouts"] == 0, "the server lost a connection to silence")
        check(stats["replace_refused"] == (1 if two else 0), "replace_refused is %d" % stats["replace_refused"])
        check(stats["auth_failures"] == (1 if secret is not None and not two else 0),
              "auth_failures is %d" % stats["auth_failures"])
    except (Failure, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        print("client.py: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()
    print("interop: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
