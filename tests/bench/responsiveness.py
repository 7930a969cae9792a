#!/usr/bin/env python3
"""Responsiveness: how long a push waits while a big spool file goes in.

    responsiveness.py TACTD DIR

DIR is what `intake_bench prepare DIR N 100000` made (a state with N
tracked entities and a stream of 100,000 observations). A copy of its state
is given to `tactd run`; pushes of one observation each go to the push
endpoint, one every 10 ms over a keep-alive connection, first on the idle
daemon, then while the whole stream lies in the spool folder as one file of
100,000 lines, until that file is moved to done/. Prints the push round
trip (p50, p99, max) in both phases and how long the file took.
"""
import http.client
import json
import os
import subprocess
import sys
import time

from procstat import prepare_run

IDLE_PUSHES = 100
GAP = 0.01  # between pushes


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def describe(name, rtts):
    ms = [r * 1000 for r in rtts]
    return (f"{name:<28} {len(ms):6} pushes  p50 {percentile(ms, 50):8.1f} ms  p99 {percentile(ms, 99):8.1f} ms  "
            f"max {max(ms):8.1f} ms")


def main():
    tactd, base = sys.argv[1], sys.argv[2]
    run, port = prepare_run(base, "run-responsiveness")
    spool = os.path.join(run, "spool")
    with open(os.path.join(base, "stream.jsonl")) as f:
        stream = f.read()
    lines = stream.count("\n")

    log = open(os.path.join(run, "log"), "w")
    daemon = subprocess.Popen([tactd, "run", "--config", os.path.join(run, "tactd.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    headers = {"Authorization": "Bearer bench-token", "Content-Type": "application/x-ndjson"}
    counter = 0

    def push(connection):
        nonlocal counter
        counter += 1
        body = json.dumps({"type": "customer", "id": "probe", "observed_at": "2026-11-20T10:00:00Z",
                           "fields": {"name": f"Probe {counter}"}}).encode()
        start = time.monotonic()
        connection.request("POST", "/v1/observations", body, headers)
        answer = connection.getresponse()
        text = answer.read()
        if answer.status != 202:
            sys.exit(f"push answered {answer.status}: {text[:200]!r}")
        return time.monotonic() - start

    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port)
                connection.connect()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    sys.exit("the push endpoint did not open; see " + log.name)
                time.sleep(0.05)
        idle = []
        for _ in range(IDLE_PUSHES):
            idle.append(push(connection))
            time.sleep(GAP)
        with open(os.path.join(run, "big.jsonl.tmp"), "w") as f:
            f.write(stream)
        os.rename(os.path.join(run, "big.jsonl.tmp"), os.path.join(spool, "big.jsonl"))
        dropped = time.monotonic()
        busy = []
        while os.path.exists(os.path.join(spool, "big.jsonl")):
            if daemon.poll() is not None:
                sys.exit("tactd exited; see " + log.name)
            busy.append(push(connection))
            time.sleep(GAP)
        seconds = time.monotonic() - dropped
        if not os.path.exists(os.path.join(spool, "done", "big.jsonl")):
            sys.exit("the spool file did not reach done/; see " + log.name)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    print(describe("push, idle", idle))
    print(describe(f"push, {lines:,}-line spool file", busy))
    print(f"{'spool file taken in':<28} {seconds:6.1f} s ({lines / seconds:,.0f} observations/s, "
          f"from the drop, with the pushes)")


if __name__ == "__main__":
    main()
