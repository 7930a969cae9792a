#!/usr/bin/env python3
"""The faults benchmark: how long the real daemon takes to drain a backlog
of notifications to a flaky webhook sink, beside a healthy sink in the
same run.

    faults_daemon.py TACTD [NOTIFICATIONS]

NOTIFICATIONS (default 1500) cancelled orders are dropped into a spool
folder at once; each makes one SMS notification to a webhook channel
pointed at tests/support/flaky_sink.py. First the sink is healthy, then it
answers 30% 503, lets 10% hang past the channel's timeout and answers a
burst of 10 requests 429 (Retry-After: 2) after every 100. The time runs
from the drop until every notification is delivered or dead. Prints the
drain time, notifications/s, attempts per notification, the dead letters
and the daemon's resident memory for each, and the breaker's openings.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from procstat import rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SINK = os.path.join(ROOT, "tests", "support", "flaky_sink.py")
CHANNEL = ('timeout = "2s"\nconcurrency = 16\nrate = 1000\nburst = 100\n'
           'backoff = "2s"\nmax_backoff = "30s"\nmax_attempts = 8\n')


def cancellation(n):
    customer = {"type": "customer", "id": f"c-{n}", "observed_at": "2026-11-20T09:00:00Z",
                "fields": {"name": f"Sanne {n}", "email": f"sanne{n}@example.com", "locale": "nl",
                           "phone": f"+3161{n:07d}"}}
    order = {"type": "order", "id": f"B-{n}", "observed_at": "2026-11-20T10:00:00Z",
             "fields": {"customer": f"c-{n}", "status": "cancelled", "total": 18.5, "currency": "EUR",
                        "cancel_reason": "de oven is kapot"}}
    return json.dumps(customer) + "\n" + json.dumps(order) + "\n"


def drain(tactd, work, name, sink_args, count):
    run = os.path.join(work, name)
    os.makedirs(os.path.join(run, "spool"))
    os.makedirs(os.path.join(run, "sink"))
    sink = subprocess.Popen([sys.executable, SINK, os.path.join(run, "sink")] + sink_args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    daemon = None
    try:
        port_file = os.path.join(run, "sink", "port")
        while not os.path.exists(port_file):
            time.sleep(0.02)
        with open(port_file) as f:
            port = f.read().strip()
        config = os.path.join(run, "tactd.toml")
        with open(config, "w") as f:
            f.write(f'[tactd]\nrules = "{ROOT}/config/rules"\ntemplates = "{ROOT}/templates"\n'
                    f'state = "state.db"\nmerchant = "Bakkerij Bol"\n[locale]\ntime_zone = "Europe/Amsterdam"\n'
                    f'[[source]]\nname = "drops"\ntype = "spool"\npath = "spool"\ninterval = "1s"\n'
                    f'[[channel]]\nchannel = "sms"\nprovider = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
                    + CHANNEL)
        log = open(os.path.join(run, "log"), "w")
        daemon = subprocess.Popen([tactd, "run", "--config", config], stdout=log, stderr=subprocess.STDOUT)
        state = os.path.join(run, "state.db")
        while not os.path.exists(state):
            time.sleep(0.02)
        with open(os.path.join(run, "spool", "a.tmp"), "w") as f:
            f.write("".join(cancellation(n) for n in range(1, count + 1)))
        start = time.monotonic()
        os.rename(os.path.join(run, "spool", "a.tmp"), os.path.join(run, "spool", "a.jsonl"))
        peak = 0.0
        while True:
            if daemon.poll() is not None:
                sys.exit("tactd exited; see " + log.name)
            peak = max(peak, rss_mb(daemon.pid))
            db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
            try:
                total, open_ = db.execute(
                    "SELECT COUNT(*), SUM(status NOT IN ('delivered', 'dead')) FROM outbox").fetchone()
                if total == count and open_ == 0:
                    seconds = time.monotonic() - start
                    dead = db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'dead'").fetchone()[0]
                    attempts = db.execute("SELECT COUNT(*) FROM delivery_attempts").fetchone()[0]
                    break
            except sqlite3.OperationalError:
                pass  # not yet created or busy
            finally:
                db.close()
            time.sleep(0.1)
        with open(log.name) as f:
            openings = len(re.findall(r"circuit breaker open ", f.read()))
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=10)
    print(f"{name:<7} sink {count:6} notifications {seconds:8.1f} s {count / seconds:8.1f} /s "
          f"{attempts / count:5.2f} attempts each, {dead} dead, breaker opened {openings} times, "
          f"peak RSS {peak:.0f} MB")


def main():
    tactd = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
    work = tempfile.mkdtemp()
    try:
        print("channel: " + CHANNEL.strip().replace("\n", ", "))
        drain(tactd, work, "healthy", ["--fail", "0", "--hang", "0", "--burst-every", "0"], count)
        drain(tactd, work, "flaky", ["--fail", "0.3", "--hang", "0.1", "--hang-seconds", "3",
                                     "--burst-every", "100", "--burst-length", "10", "--retry-after", "2"], count)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
