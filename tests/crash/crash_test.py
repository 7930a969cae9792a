#!/usr/bin/env python3
"""Crash safety of the real daemon: SIGKILL at random moments, on the same state.

    crash_test.py TACTD [--kills N] [--seconds S] [--seed N] [--keep DIR]

A feeder sends a steady stream of events, each a customer's order that is
cancelled, which the shipped order-cancelled rule answers with exactly one
apology: half of them pushed (POST /v1/observations, batches of a few; a
batch not answered 202 is sent again, as a real client does), half dropped
into the spool folder as files. Both channels are webhooks to a loopback
sink that records every request's idempotency key and answers after a short
random delay, so that sends are in flight when the daemon dies.

Meanwhile the daemon is killed with SIGKILL N times at random moments
(during intake, sends and commits alike) and started again at once on the
same state. Then the feeder stops, the daemon drains, and the test checks:

  - every event accepted (a push answered 202, a spool file moved to done/)
    produced its notification, and it reached the sink;
  - no notification arrived that no event asked for, and none has two keys;
  - no spool file is lost or failed, nothing is left pending or unknown;
  - deliveries of the same key again (duplicates) are under 1%.

It prints its figures and exits 0 when all hold, 1 otherwise. Every wait is
bounded; the daemon and the sink are stopped by their PIDs at the end, also
on failure.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "crash-test-token"
PATIENCE = 60  # seconds for the daemon to start, or to drain at the end
MAX_DUPLICATE_SHARE = 0.01


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(n):
    """Customer c-<n> and their order B-<n>, cancelled: one apology (SMS for even n)."""
    phone = f',"phone":"+316{n:08d}"' if n % 2 == 0 else ""
    return (
        f'{{"type":"customer","id":"c-{n}","observed_at":"2026-11-20T09:00:00Z","fields":'
        f'{{"name":"Sanne {n}","email":"sanne{n}@example.com","locale":"nl"{phone}}}}}\n'
        f'{{"type":"order","id":"B-{n}","observed_at":"2026-11-20T10:00:00Z","fields":'
        f'{{"customer":"c-{n}","status":"cancelled","total":18.5,"currency":"EUR",'
        f'"cancel_reason":"de oven is kapot"}}}}\n'
    )


class Sink:
    """The webhook sink: records idempotency keys and the entity of each request."""

    def __init__(self, rng):
        self.lock = threading.Lock()
        self.arrivals = Counter()  # key -> requests
        self.entity_keys = {}  # entity -> set of keys
        self.in_flight = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                try:
                    entity = json.loads(body).get("entity", "?")
                except ValueError:
                    entity = "?"
                with sink.lock:
                    sink.in_flight += 1
                    sink.arrivals[key] += 1
                    sink.entity_keys.setdefault(entity, set()).add(key)
                    delay = rng.uniform(0.0, 0.01)
                time.sleep(delay)  # a provider's think time: sends are in flight when the daemon dies
                data = b'{"id":"ok"}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the daemon died meanwhile
                finally:
                    with sink.lock:
                        sink.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a connection the killed daemon left half-open

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def busy(self):
        with self.lock:
            return self.in_flight > 0

    def snapshot(self):
        with self.lock:
            return Counter(self.arrivals), {e: set(k) for e, k in self.entity_keys.items()}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Feeder(threading.Thread):
    """Sends events until stopped: push batches and spool files, side by side."""

    def __init__(self, port, spool, rate, rng):
        super().__init__(daemon=True)
        self.port, self.spool, self.rate, self.rng = port, spool, rate, rng
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.next = 1
        self.accepted = set()  # event numbers a 202 acknowledged
        self.spooled = {}  # file name -> event numbers
        self.pushing = False
        self.pushes = Counter()  # answer -> count ("202", "503", "no answer")

    def take(self, count):
        numbers = list(range(self.next, self.next + count))
        self.next += count
        return numbers

    def push(self, numbers):
        body = "".join(event(n) for n in numbers).encode()
        while not self.stop_flag.is_set():
            self.pushing = True
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.next_port(), timeout=10)
                connection.request("POST", "/v1/observations", body,
                                   {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/x-ndjson"})
                answer = connection.getresponse()
                answer.read()
                connection.close()
                status = str(answer.status)
            except (OSError, http.client.HTTPException):
                status = "no answer"
            finally:
                self.pushing = False
            with self.lock:
                self.pushes[status] += 1
                if status == "202":
                    self.on_accepted(numbers)
                    return True
            time.sleep(0.05)  # down or restarting: send the same batch again
        return False

    def next_port(self):
        """Where the next push goes."""
        return self.port

    def on_accepted(self, numbers):
        """A push of `numbers` was answered 202 (called holding self.lock)."""
        self.accepted.update(numbers)

    def drop(self, numbers):
        name = f"events-{numbers[0]:07d}.jsonl"
        aside = os.path.join(self.spool, "." + name + ".tmp")
        with open(aside, "w") as f:
            f.write("".join(event(n) for n in numbers))
        os.rename(aside, os.path.join(self.spool, name))
        with self.lock:
            self.spooled[name] = numbers

    def run(self):
        spooler = threading.Thread(target=self.spool_loop, daemon=True)
        spooler.start()
        self.push_loop()
        spooler.join(timeout=PATIENCE)

    def push_loop(self):
        while not self.stop_flag.is_set():
            with self.lock:
                numbers = self.take(self.rng.randint(1, 10))
            if not self.push(numbers):
                return  # stopped before its 202: these events were never accepted
            time.sleep(len(numbers) / (self.rate / 2))

    def spool_loop(self):
        while not self.stop_flag.is_set():
            with self.lock:
                numbers = self.take(self.rng.randint(1, 10))
            self.drop(numbers)
            time.sleep(len(numbers) / (self.rate / 2))


class Daemon:
    def __init__(self, tactd, config, log):
        self.tactd, self.config, self.log = tactd, config, log
        self.process = None

    def start(self):
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([self.tactd, "run", "--config", self.config], stdout=log,
                                            stderr=subprocess.STDOUT)

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=PATIENCE)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=PATIENCE)
        return self.process.returncode if self.process else 0


def write_config(work, sink_port, push_port):
    spool = os.path.join(work, "spool")
    os.makedirs(spool)
    with open(os.path.join(work, "token"), "w") as f:
        f.write(TOKEN + "\n")
    channels = ""
    for channel in ("email", "sms"):
        channels += (f'[[channel]]\nchannel = "{channel}"\nprovider = "webhook"\n'
                     f'url = "http://127.0.0.1:{sink_port}/{channel}"\nrate = 10000\n'
                     f'burst = 10000\ntimeout = "5s"\nbackoff = "1s"\n')
    config = os.path.join(work, "tactd.toml")
    with open(config, "w") as f:
        f.write(f'[tactd]\nrules = "{SOURCE}/config/rules"\ntemplates = "{SOURCE}/templates"\n'
                f'state = "state.db"\nmerchant = "Bakkerij Bol"\nstop_grace = "5s"\n'
                f'[locale]\ntime_zone = "Europe/Amsterdam"\n'
                f'[push]\nlisten = "127.0.0.1:{push_port}"\ntoken_file = "token"\n'
                f'[[source]]\nname = "drops"\ntype = "spool"\npath = "spool"\ninterval = "1s"\n' + channels)
    return config, spool


def outbox_statuses(state):
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10) as db:
        return Counter(status for (status,) in db.execute("SELECT status FROM outbox"))


def wait_for(what, done, seconds=PATIENCE):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.1)
    print(f"FAIL: timed out waiting for {what}")
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tactd")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120, help="how long the events flow, kills spread over it")
    parser.add_argument("--rate", type=float, default=100, help="events per second the feeder aims at")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = args.keep or tempfile.mkdtemp(prefix="tactd-crash-")
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    started = time.monotonic()
    sink = Sink(random.Random(seed + 1))
    push_port = free_port()
    config, spool = write_config(work, sink.port, push_port)
    daemon = Daemon(args.tactd, config, os.path.join(work, "log"))
    feeder = Feeder(push_port, spool, args.rate, random.Random(seed + 2))
    failures = []
    moments = Counter()
    try:
        daemon.start()
        feeder.start()
        # Kill moments spread over the run at random; the last leaves time to drain.
        times = sorted(rng.uniform(1.0, args.seconds) for _ in range(args.kills))
        t0 = time.monotonic()
        for at in times:
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            if daemon.process.poll() is not None:
                failures.append(f"tactd exited by itself with {daemon.process.returncode}; see {daemon.log}")
                break
            if feeder.pushing:
                moments["push in flight"] += 1
            if sink.busy():
                moments["send in flight"] += 1
            daemon.kill()
            daemon.start()
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        feeder.stop_flag.set()
        feeder.join(timeout=PATIENCE)

        state = os.path.join(work, "state.db")
        expected = set(feeder.accepted)
        for numbers in feeder.spooled.values():
            expected.update(numbers)  # each must reach done/: checked below
        expected_entities = {f"order/B-{n}" for n in expected}

        def drained():
            if any(name.endswith(".jsonl") for name in os.listdir(spool)):
                return False
            _, entity_keys = sink.snapshot()
            return expected_entities <= set(entity_keys) and outbox_statuses(state).get("pending", 0) == 0

        if not wait_for("the spool to empty and every notification to arrive", drained):
            failures.append("not drained")
        time.sleep(0.5)  # a late duplicate would show now
        code = daemon.stop()
        if code != 0:
            failures.append(f"tactd stopped with exit status {code}")

        done = set(os.listdir(os.path.join(spool, "done"))) if os.path.isdir(os.path.join(spool, "done")) else set()
        lost_files = [name for name in feeder.spooled if name not in done]
        failed = os.listdir(os.path.join(spool, "failed")) if os.path.isdir(os.path.join(spool, "failed")) else []
        arrivals, entity_keys = sink.snapshot()
        missing = expected_entities - set(entity_keys)
        unexpected = set(entity_keys) - {f"order/B-{n}" for n in range(1, feeder.next)}
        double_keyed = [e for e, keys in entity_keys.items() if len(keys) > 1]
        notifications = len(arrivals)
        duplicates = sum(count - 1 for count in arrivals.values())
        share = duplicates / notifications if notifications else 0.0
        statuses = outbox_statuses(state)
        if lost_files:
            failures.append(f"{len(lost_files)} spool files not in done/: {sorted(lost_files)[:5]}")
        if failed:
            failures.append(f"{len(failed)} spool files failed: {sorted(failed)[:5]}")
        if missing:
            failures.append(f"{len(missing)} accepted events without their notification: {sorted(missing)[:5]}")
        if unexpected:
            failures.append(f"{len(unexpected)} notifications nobody asked for: {sorted(unexpected)[:5]}")
        if double_keyed:
            failures.append(f"{len(double_keyed)} events notified under two keys: {sorted(double_keyed)[:5]}")
        if set(statuses) - {"delivered"}:
            failures.append(f"outbox not all delivered: {dict(statuses)}")
        if share >= MAX_DUPLICATE_SHARE:
            failures.append(f"duplicates {share:.2%} of notifications, at least {MAX_DUPLICATE_SHARE:.0%}")

        seconds = time.monotonic() - started
        print(f"crash test (seed {seed}): {args.kills} SIGKILLs in {args.seconds:.0f} s of events, "
              f"{seconds:.1f} s wall time")
        print(f"  kills: {dict(moments)}")
        print(f"  events: {feeder.next - 1} sent, {len(expected)} accepted "
              f"({len(feeder.accepted)} pushed, {len(expected) - len(feeder.accepted)} spooled in "
              f"{len(feeder.spooled)} files); push answers {dict(feeder.pushes)}")
        print(f"  notifications: {notifications} keys at the sink, {sum(arrivals.values())} requests, "
              f"{duplicates} duplicate deliveries ({share:.2%}); outbox {dict(statuses)}")
        print(f"  missing {len(missing)}, unexpected {len(unexpected)}, spool files lost {len(lost_files)}, "
              f"failed {len(failed)}")
    finally:
        feeder.stop_flag.set()
        daemon.stop()
        sink.stop()
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print("FAIL: " + failure)
    if failures and not args.keep:
        print(f"  (state and log kept in {work})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
