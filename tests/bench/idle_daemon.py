#!/usr/bin/env python3
"""Memory and idle CPU of the real daemon.

    idle_daemon.py TACTD DIR [IDLE_SECONDS]

DIR is what `intake_bench prepare` made (its state of N tracked entities,
tactd.toml and stream.jsonl). Three runs of `tactd run`, each printing its
resident memory (VmRSS) and peak (VmHWM):

  start     on an empty state: what the daemon itself costs;
  tracked   on a copy of DIR's state, after start-up and after its stream
            went in through the spool folder;
  idle      then IDLE_SECONDS (default 60) with nothing to do: CPU seconds
            used meanwhile, the figure that must stay near zero.
"""
import os
import socket
import subprocess
import sys
import time

from procstat import prepare_run, cpu_seconds, rss_mb

BATCH = 1000


def peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(tactd, run, port):
    log = open(os.path.join(run, "log"), "w")
    daemon = subprocess.Popen([tactd, "run", "--config", os.path.join(run, "tactd.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return daemon
        except OSError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                daemon.kill()
                sys.exit("the daemon did not open its push endpoint; see " + log.name)
            time.sleep(0.05)


def stop(daemon):
    daemon.terminate()
    daemon.wait(timeout=30)


def main():
    tactd, base = sys.argv[1], sys.argv[2]
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    with open(os.path.join(base, "stream.jsonl")) as f:
        lines = f.readlines()

    run, port = prepare_run(base, "run-idle-empty", state=False)
    daemon = start(tactd, run, port)
    time.sleep(1)
    print(f"start     empty state:               RSS {rss_mb(daemon.pid):5.1f} MB, peak {peak_mb(daemon.pid):5.1f} MB")
    stop(daemon)

    run, port = prepare_run(base, "run-idle")
    daemon = start(tactd, run, port)
    try:
        time.sleep(1)
        print(f"tracked   after start:               RSS {rss_mb(daemon.pid):5.1f} MB, peak {peak_mb(daemon.pid):5.1f} MB")
        spool = os.path.join(run, "spool")
        for n in range(0, len(lines), BATCH):
            with open(os.path.join(spool, f"{n // BATCH:06}.jsonl"), "w") as f:
                f.writelines(lines[n:n + BATCH])
        while any(name.endswith(".jsonl") for name in os.listdir(spool)):
            if daemon.poll() is not None:
                sys.exit("tactd exited; see " + os.path.join(run, "log"))
            time.sleep(0.05)
        print(f"tracked   after {len(lines)} observations: RSS {rss_mb(daemon.pid):5.1f} MB, "
              f"peak {peak_mb(daemon.pid):5.1f} MB")
        time.sleep(2)  # the last batch's deliveries and timers settle
        cpu = cpu_seconds(daemon.pid)
        time.sleep(idle)
        used = cpu_seconds(daemon.pid) - cpu
        print(f"idle      {idle:.0f} s: CPU {used:.2f} s ({used / idle * 100:.2f}% of one core), "
              f"RSS {rss_mb(daemon.pid):5.1f} MB, peak {peak_mb(daemon.pid):5.1f} MB")
    finally:
        stop(daemon)


if __name__ == "__main__":
    main()
