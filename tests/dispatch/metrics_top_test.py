#!/usr/bin/python3
"""axon-top renders one frame (--once) against a running examples/echo_server.

    metrics_top_test.py ECHO_SERVER AXON_TOP
"""
import re
import subprocess
import sys


def main():
    server, top = sys.argv[1], sys.argv[2]
    srv = subprocess.Popen([server, "--port", "0", "--metrics", "127.0.0.1:0", "--seconds", "120"],
                           stdout=subprocess.PIPE, text=True)
    try:
        addr = None
        for line in srv.stdout:
            if line.startswith("METRICS "):
                addr = line.split()[1]
                break
        if addr is None:
            sys.exit("echo_server printed no METRICS line")
        out = subprocess.run([sys.executable, top, "--once", "--interval", "0.3", addr],
                             capture_output=True, text=True, timeout=60)
        print(out.stdout)
        if out.returncode != 0:
            sys.exit(f"axon-top exited {out.returncode}: {out.stderr}")
        text = out.stdout
        checks = [
            (f"axon-top  {addr}" in text, "the header names the address"),
            (re.search(r"^actors 2 ", text, re.M) is not None, "two actors alive (echo, dispatcher)"),
            (re.search(r"^network: connections 0 ", text, re.M) is not None, "the network line"),
            ("ACTORS by mailbox (2 of 2)" in text, "the actor table's title"),
            (re.search(r"^\s+\d+ echo\s+echo\s+0\s+0\s+", text, re.M) is not None,
             "a row for the actor registered as echo, mailbox 0"),
            (re.search(r"^\s+\d+ -\s+axon.dispatcher\s", text, re.M) is not None,
             "a row for the network dispatcher"),
            ("CONNECTIONS (0)" in text, "the connection table"),
        ]
        bad = [what for ok, what in checks if not ok]
        for what in bad:
            print("FAILED:", what)
        # axon-top fails clearly when nothing listens.
        dead = subprocess.run([sys.executable, top, "--once", "127.0.0.1:1"], capture_output=True,
                              text=True, timeout=60)
        if dead.returncode != 1 or "cannot read" not in dead.stderr:
            print("FAILED: axon-top against a closed port:", dead.returncode, dead.stderr)
            bad.append("closed port")
    finally:
        srv.terminate()
        rc = srv.wait(timeout=60)
    if rc != 0:
        sys.exit(f"echo_server exited {rc}")
    sys.exit(1 if bad else 0)


main()
