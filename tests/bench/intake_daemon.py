#!/usr/bin/env python3
"""The intake benchmark through the real daemon.

    intake_daemon.py TACTD DIR spool|push

DIR is what `intake_bench prepare` made. A copy of its state is given to
`tactd run`; then its stream goes in, either as spool files of 1,000 lines
(all in place before the start; the time runs until the last is moved to
done/) or as push requests of 1,000 lines over one keep-alive connection
(each answered 202 after its commit). Prints observations/s, the daemon's
CPU per observation and its resident memory at the end.
"""
import http.client
import os
import subprocess
import sys
import time

from procstat import prepare_run, cpu_seconds, rss_mb

BATCH = 1000


def main():
    tactd, base, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    run, port = prepare_run(base, "run-" + mode)
    with open(os.path.join(base, "stream.jsonl")) as f:
        lines = f.readlines()
    batches = [lines[i:i + BATCH] for i in range(0, len(lines), BATCH)]
    if mode == "spool":
        for n, batch in enumerate(batches):
            with open(os.path.join(run, "spool", f"{n:06}.jsonl"), "w") as f:
                f.writelines(batch)

    log = open(os.path.join(run, "log"), "w")
    daemon = subprocess.Popen([tactd, "run", "--config", os.path.join(run, "tactd.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        if mode == "spool":
            start = time.monotonic()
            spool = os.path.join(run, "spool")
            while any(name.endswith(".jsonl") for name in os.listdir(spool)):
                if daemon.poll() is not None:
                    sys.exit("tactd exited; see " + log.name)
                time.sleep(0.02)
            seconds = time.monotonic() - start
            failed = os.path.join(spool, "failed")
            if os.path.isdir(failed) and os.listdir(failed):
                sys.exit("spool files failed; see " + log.name)
        else:
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
            bodies = ["".join(batch).encode() for batch in batches]
            headers = {"Authorization": "Bearer bench-token", "Content-Type": "application/x-ndjson"}
            start = time.monotonic()
            for body in bodies:
                connection.request("POST", "/v1/observations", body, headers)
                answer = connection.getresponse()
                text = answer.read()
                if answer.status != 202:
                    sys.exit(f"push answered {answer.status}: {text[:200]!r}")
            seconds = time.monotonic() - start
        cpu = cpu_seconds(daemon.pid)
        rss = rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    n = len(lines)
    print(f"{'daemon ' + mode:<9} {n:9} observations {seconds:7.2f} s {n / seconds:9.0f} /s "
          f"{cpu * 1e6 / n:7.1f} us CPU each (with start-up), RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
