#!/usr/bin/python3
"""Checks for test_metrics, with real parsers and a real HTTP client.

  metrics_check.py prom FILE NAME HANDLED   Prometheus text: parses with
      prometheus_client, every family has HELP and TYPE lines, and the actor
      registered as NAME has handled HANDLED messages
  metrics_check.py json FILE NAME HANDLED   the same from the JSON document
  metrics_check.py http HOST:PORT           the endpoint: /metrics, /actors,
      a 400, a 404, a 1 MiB request line, 100 concurrent requests
  metrics_check.py growing HOST:PORT NAME   NAME comes first by mailbox depth
Exits 0 when every check holds; prints what failed otherwise.
"""
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def parse_prom(text):
    """Families from the real parser, after checking HELP/TYPE per family."""
    helps, types, samples = set(), set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            types.add(line.split(" ")[2])
        elif line and not line.startswith("#"):
            samples.add(line.split("{")[0].split(" ")[0])
    for name in samples:
        check(name in helps, f"series {name} has no HELP line")
        check(name in types, f"series {name} has no TYPE line")
    families = list(text_string_to_metric_families(text))
    for f in families:
        check(f.documentation != "", f"family {f.name} has no help text")
        check(f.type != "unknown", f"family {f.name} has no type")
    return families


def prom_file(path, name, handled):
    with open(path, encoding="utf-8") as f:
        families = parse_prom(f.read())
    found = [s for f in families for s in f.samples
             if s.name == "axon_actor_messages_handled_total" and s.labels.get("name") == name]
    check(len(found) == 1, f"one handled series for the actor named {name!r}, got {len(found)}")
    if found:
        check(found[0].value == handled, f"handled {found[0].value}, expected {handled}")
    names = {f.name for f in families}
    for want in ("axon_messages_delivered", "axon_actors_alive", "axon_actor_mailbox_depth"):
        check(want in names, f"family {want} missing")


def json_file(path, name, handled):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    found = [a for a in doc["actors_by_mailbox"] + doc["actors_by_time"] if a["name"] == name]
    check(len(found) >= 1, f"actor named {name!r} missing from the JSON rankings")
    for a in found:
        check(a["handled"] == handled, f"JSON handled {a['handled']}, expected {handled}")
    check(doc["system"]["delivered"] >= handled, "system delivered below the actor's count")


def get(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")


def huge_request_line(host, port):
    """A 1 MiB request line: the status code, or None if none came."""
    s = socket.create_connection((host, port), timeout=30)
    try:
        line = b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        try:
            s.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        data = b""
        while b"\r\n" not in data:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1."):
            return None
        return int(data.split(b" ")[1])
    finally:
        s.close()


def http(addr):
    host, port = addr.rsplit(":", 1)
    base = f"http://{addr}"
    # First, while the test's messages are flowing: 100 requests at once.
    results = []

    def one(i):
        path = "/metrics" if i % 2 == 0 else "/actors?sort=mailbox&limit=10"
        status, _, body = get(base, path)
        ok = status == 200
        if ok and i % 2 == 0:
            ok = len(list(text_string_to_metric_families(body))) > 0
        elif ok:
            ok = "actors" in json.loads(body)
        results.append(ok)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results.count(True) == 100, f"{results.count(True)} of 100 concurrent requests succeeded")
    status, ctype, body = get(base, "/metrics")
    check(status == 200, f"/metrics status {status}")
    check(ctype.startswith("text/plain; version=0.0.4"), f"/metrics content type {ctype!r}")
    parse_prom(body)
    status, ctype, body = get(base, "/actors?sort=time&limit=3")
    check(status == 200, f"/actors status {status}")
    check(ctype == "application/json", f"/actors content type {ctype!r}")
    doc = json.loads(body)
    check(doc["sort"] == "time" and doc["limit"] == 3, f"/actors echoes {doc['sort']}, {doc['limit']}")
    check(1 <= len(doc["actors"]) <= 3, f"/actors gave {len(doc['actors'])} actors")
    times = [a["handler_seconds"] for a in doc["actors"]]
    check(times == sorted(times, reverse=True), f"/actors?sort=time is not sorted: {times}")
    for bad in ("/actors?sort=size", "/actors?limit=0", "/actors?limit=x"):
        status, _, _ = get(base, bad)
        check(status == 400, f"{bad} status {status}, expected 400")
    status, _, _ = get(base, "/nowhere")
    check(status == 404, f"/nowhere status {status}, expected 404")
    code = huge_request_line(host, int(port))
    check(code is not None and 400 <= code < 500, f"1 MiB request line got {code}, expected a 4xx")
    status, _, _ = get(base, "/metrics")
    check(status == 200, f"/metrics after the burst: status {status}")


def growing(addr, name):
    """The actor named NAME comes first in /actors?sort=mailbox, with a
    mailbox of more than 100, within 30 s of polling."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, body = get(f"http://{addr}", "/actors?sort=mailbox&limit=3")
        actors = json.loads(body)["actors"]
        if actors and actors[0]["name"] == name and actors[0]["mailbox_depth"] > 100:
            return
        time.sleep(0.01)
    check(False, f"{name} never came first by mailbox depth: last {body}")


def main():
    if sys.argv[1] == "prom":
        prom_file(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "json":
        json_file(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "http":
        http(sys.argv[2])
    elif sys.argv[1] == "growing":
        growing(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown check {sys.argv[1]}")
    for f in failures:
        print("FAILED:", f)
    sys.exit(1 if failures else 0)


main()
