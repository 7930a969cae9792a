#!/usr/bin/env python3
"""What a scrape of /metrics and a /readyz probe cost the daemon's loop on a
big state.

    state_look.py TACTD [N]

The gauges (tactd_outbox_pending, tactd_outbox_unknown_outcome,
tactd_outbox_oldest_pending_age_seconds, tactd_timers_pending), /readyz and
STATUS= read the state on the loop (SQLite): whatever they cost, every push,
delivery and timer waits that long. Two states in the same run: an empty one
(the ceiling: what a scrape costs without a backlog) and one with N
(default 1,000,000) notifications pending, all due, and N timers (a million
customers' silence timers), written with Python's sqlite3 into a state
that `tactd migrate` made. The daemon's channels point at a closed port
with a rate of one message in 1,000 s, so that the backlog stays as it is.
Printed for each: p50 and the maximum of 20 scrapes of /metrics and 20 of
/readyz, one at a time over one keep-alive connection (the loop does
nothing else: each answer's time is what it held the loop), and the
pending gauges the scrape showed. Then a reload (SIGHUP) that removes the
`at` rule the timers belong to (the shipped check-in), while /healthz is
asked every 5 ms: the longest answer from the SIGHUP until the log says
the rule's timers are cancelled, and how long that took.
"""
import http.client
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from procstat import free_port

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRAPES = 20
PROBE_GAP = 0.005


def write_config(work, admin, push):
    channel = 'provider = "webhook"\nurl = "http://127.0.0.1:9/hook"\nrate = 0.001\nburst = 1\n'
    with open(os.path.join(work, "token"), "w") as f:
        f.write("bench-token\n")
    with open(os.path.join(work, "tactd.toml"), "w") as f:
        f.write(f'[tactd]\nrules = "rules"\ntemplates = "{SOURCE}/templates"\n'
                'state = "state.db"\nmerchant = "Bakkerij Bol"\n'
                '[locale]\ntime_zone = "Europe/Amsterdam"\nsupported = ["en", "nl"]\n'
                f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
                f'[push]\nlisten = "127.0.0.1:{push}"\ntoken_file = "token"\n'
                f'[[channel]]\nchannel = "sms"\n{channel}[[channel]]\nchannel = "email"\n{channel}')


def fill(state, n):
    """n pending notifications due an hour ago, and n check-in timers due next year."""
    now_ms = int(time.time() * 1000)
    db = sqlite3.connect(state)
    body = "We are sorry: your order was cancelled because the kitchen was overloaded. " * 6
    db.executemany(
        "INSERT INTO outbox (idempotency_key, created_at, due_at, rule, kind, customer, entity, channel, recipient, "
        "body, locale, time_zone, status, recipient_key) VALUES (?, ?, ?, 'order-cancelled', 'apology', ?, ?, 'sms', "
        "?, ?, 'en', 'Europe/Amsterdam', 'pending', ?)",
        ((f"bench-{k}", now_ms - 3_600_000, now_ms - 3_600_000 + k % 1000, f"bc-{k:07}", f"order:bo-{k:07}",
          f"+316{k:08}", body, f"316{k:08}") for k in range(n)))
    db.executemany("INSERT INTO timers (rule, entity, due_at, fired) VALUES ('check-in', ?, ?, 0)",
                   ((f"customer/bc-{k:07}", now_ms + 365 * 86_400_000 + k) for k in range(n)))
    db.commit()
    db.close()


def timed_gets(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times, text = [], ""
    for _ in range(SCRAPES):
        start = time.monotonic()
        connection.request("GET", path)
        answer = connection.getresponse()
        text = answer.read().decode()
        times.append(time.monotonic() - start)
    connection.close()
    times.sort()
    return times[len(times) // 2], times[-1], text


def gauge(text, name):
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return found.group(1) if found else "?"


def reload_removing_check_in(daemon, work, port, log_path):
    """The longest /healthz answer from a SIGHUP that removes the check-in
    rule until its timers are cancelled, and how long that took."""
    with open(os.path.join(work, "rules", "customers.toml"), "w") as f:
        f.write("# the check-in rule removed by state_look.py\n")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    answers = []
    sent = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    while True:
        start = time.monotonic()
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        answers.append(time.monotonic() - start)
        with open(log_path) as f:
            if "reload: timers cancelled rule=check-in" in f.read():
                return max(answers), time.monotonic() - sent
        if time.monotonic() - sent > 120:
            sys.exit("the check-in timers were not cancelled within 120 s; see " + log_path)
        time.sleep(PROBE_GAP)


def measure(tactd, work, n):
    admin, push = free_port(), free_port()
    shutil.copytree(os.path.join(SOURCE, "config", "rules"), os.path.join(work, "rules"))
    write_config(work, admin, push)
    config = os.path.join(work, "tactd.toml")
    subprocess.run([tactd, "migrate", "--config", config], check=True, stdout=subprocess.DEVNULL)
    if n:
        started = time.monotonic()
        fill(os.path.join(work, "state.db"), n)
        print(f"# {n:,} notifications and {n:,} timers written in {time.monotonic() - started:.0f} s")
    log = open(os.path.join(work, "log"), "w")
    daemon = subprocess.Popen([tactd, "run", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    sys.exit("the admin endpoint did not open; see " + log.name)
                time.sleep(0.1)
        metrics_p50, metrics_max, text = timed_gets(admin, "/metrics")
        ready_p50, ready_max, _ = timed_gets(admin, "/readyz")
        reload_max, reload_seconds = reload_removing_check_in(daemon, work, admin, log.name)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    print(f"{n:>9} pending, {n:>9} timers:  /metrics p50 {metrics_p50 * 1e3:7.1f} ms max {metrics_max * 1e3:7.1f} ms  "
          f"/readyz p50 {ready_p50 * 1e3:7.1f} ms max {ready_max * 1e3:7.1f} ms  "
          f"(tactd_outbox_pending {gauge(text, 'tactd_outbox_pending')}, "
          f"tactd_timers_pending {gauge(text, 'tactd_timers_pending')}, "
          f"tactd_outbox_oldest_pending_age_seconds {gauge(text, 'tactd_outbox_oldest_pending_age_seconds')})")
    print(f"{'':>9} a reload removing the check-in rule: the longest /healthz answer meanwhile "
          f"{reload_max * 1e3:7.1f} ms; its timers cancelled in {reload_seconds:5.2f} s")


def main():
    tactd = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    for size in (0, n):
        work = tempfile.mkdtemp(prefix="tactd-state-look-")
        try:
            measure(tactd, work, size)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
