#!/usr/bin/env python3
"""Three tactd replicas on one PostgreSQL: a replica dies, one stops, none decides twice.

    replica_test.py TACTD [--seconds S] [--rate R] [--lease L] [--keep DIR]

Needs the PostgreSQL server of the CTest fixture `postgres`: its connection
string is in the file $TACTD_PG_CONNINFO_FILE (tests/support/postgres_server.sh).
The test makes a database of its own and drops it at the end.

Three `tactd run` processes share that database ([tactd] state =
"postgresql://...", [cluster] lease = L), each with its own push endpoint,
all with the same spool folder as a source (read by the one replica holding
its source lease) and the same loopback webhook sink, which records each
request's idempotency key (the sink of crash_test.py). A feeder sends a
steady stream of events that each require one notification (a customer's
order, cancelled: one apology), half pushed to the replicas in turn (a batch
not answered 202 goes to the next replica), half dropped into the spool.

Meanwhile replica 2 is killed with SIGKILL and later started again, and
replica 3 is stopped with SIGTERM. After each, the test measures how long
until every shard is owned by a live replica again (shard_leases). Then the
feeder stops and the test waits for the outbox to drain, and checks:

  - every accepted event (a push answered 202, a spool file moved to done/)
    produced its notification, and it reached the sink;
  - no event was notified under two idempotency keys (decided twice), none
    arrived that nobody asked for;
  - a key delivered again was first sent before a replica died or stopped
    and again after (the at-least-once window of a send cut off), and such
    repeats are under 1%;
  - the survivors owned every shard again within lease + lease/3 + 1 s.

It prints its figures and exits 0 when all hold, 1 otherwise. The replicas
and the sink are stopped by their PIDs at the end, also on failure.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "crash"))
import crash_test  # noqa: E402
from crash_test import SOURCE, TOKEN, Sink, free_port  # noqa: E402

PATIENCE = 60  # seconds: to start, to drain
SHARDS = 256
MAX_DUPLICATE_SHARE = 0.01


class TimedCounter(Counter):
    """The sink's count per idempotency key, with when each request came."""

    def __init__(self):
        super().__init__()
        self.times = {}

    def __setitem__(self, key, value):
        self.times.setdefault(key, []).append(time.monotonic())
        super().__setitem__(key, value)


def conninfo_keywords(text):
    return dict(pair.split("=", 1) for pair in text.split())


class Database:
    """A database of its own on the fixture's server, through psql."""

    def __init__(self):
        path = os.environ.get("TACTD_PG_CONNINFO_FILE")
        if not path or not os.path.exists(path):
            raise SystemExit("FAIL: no PostgreSQL server: $TACTD_PG_CONNINFO_FILE is unset or missing "
                             "(run through ctest, which starts the fixture `postgres`)")
        with open(path) as f:
            self.server = f.read().strip()
        self.name = f"tactd_replicas_{os.getpid()}"
        self.keywords = conninfo_keywords(self.server)
        self.sql(f"CREATE DATABASE {self.name}", database=self.keywords.get("dbname"))
        self.conninfo = f"{self.server} dbname={self.name}"
        k = self.keywords
        self.url = f"postgresql://{k.get('user', 'tactd')}@{k.get('host', '127.0.0.1')}:{k.get('port', '5432')}/{self.name}"

    def sql(self, statement, database=None):
        conninfo = f"{self.server} dbname={database or self.name}"
        out = subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-Atc", statement], capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {statement}: {out.stderr.strip()}")
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def drop(self):
        try:
            self.sql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)", database=self.keywords.get("dbname"))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"warning: {e}")


class Replica:
    def __init__(self, tactd, work, number, state_url, sink_port, spool, lease):
        self.tactd, self.number = tactd, number
        self.folder = os.path.join(work, f"replica-{number}")
        os.makedirs(self.folder)
        self.port = free_port()
        self.log = os.path.join(self.folder, "log")
        self.process = None
        with open(os.path.join(self.folder, "token"), "w") as f:
            f.write(TOKEN + "\n")
        channels = ""
        for channel in ("email", "sms"):
            channels += (f'[[channel]]\nchannel = "{channel}"\nprovider = "webhook"\n'
                         f'url = "http://127.0.0.1:{sink_port}/{channel}"\nrate = 30000\n'
                         f'burst = 10000\ntimeout = "5s"\nbackoff = "1s"\n')
        self.config = os.path.join(self.folder, "tactd.toml")
        with open(self.config, "w") as f:
            f.write(f'[tactd]\nrules = "{SOURCE}/config/rules"\ntemplates = "{SOURCE}/templates"\n'
                    f'state = "{state_url}"\nmerchant = "Bakkerij Bol"\nstop_grace = "5s"\n'
                    f'[locale]\ntime_zone = "Europe/Amsterdam"\n'
                    f'[cluster]\nlease = "{lease}s"\n'
                    f'[push]\nlisten = "127.0.0.1:{self.port}"\ntoken_file = "token"\n'
                    f'[[source]]\nname = "drops"\ntype = "spool"\npath = "{spool}"\ninterval = "1s"\n' + channels)

    def start(self):
        with open(self.log, "a") as log:
            log.write(f"--- start at {time.time():.3f}\n")
            self.process = subprocess.Popen([self.tactd, "run", "--config", self.config], stdout=log,
                                            stderr=subprocess.STDOUT)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def ids(self):
        """The replica ids this replica's processes logged, oldest first."""
        with open(self.log, errors="replace") as f:
            found = re.findall(r'replica="?([^\s"]+)', f.read())
        return list(dict.fromkeys(found))

    def running(self):
        with open(self.log, errors="replace") as f:
            return f.read().count(" running: ")

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=PATIENCE)

    def stop(self):
        if self.alive():
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=PATIENCE)
                return -9
        return self.process.returncode if self.process else 0


class Feeder(crash_test.Feeder):
    """crash_test's feeder, pushing to the replicas in turn: a batch not answered 202 goes to the next."""

    def __init__(self, replicas, spool, rate, rng):
        super().__init__(None, spool, rate, rng)
        self.replicas = replicas
        self.turn = 0
        self.accepted_at = {}  # pushed event -> when its 202 came

    def next_port(self):
        replica = self.replicas[self.turn % len(self.replicas)]
        self.turn += 1
        return replica.port

    def on_accepted(self, numbers):
        super().on_accepted(numbers)
        now = time.monotonic()
        self.accepted_at.update((n, now) for n in numbers)


def owners(db):
    """Live shard leases by owner."""
    now = int(time.time() * 1000)
    return {owner: int(count) for owner, count in
            db.sql(f"SELECT owner, COUNT(*) FROM shard_leases WHERE owner <> '' AND lease_until > {now} GROUP BY owner")}


def takeover(db, gone, seconds):
    """Seconds until every shard is owned by a live replica other than `gone`, or None."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        held = owners(db)
        if gone not in held and sum(held.values()) == SHARDS:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def wait_for(what, done, seconds=PATIENCE):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.2)
    print(f"FAIL: timed out waiting for {what}")
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tactd")
    parser.add_argument("--seconds", type=float, default=24, help="how long the events flow")
    parser.add_argument("--rate", type=float, default=100, help="events per second the feeder aims at")
    parser.add_argument("--lease", type=int, default=6, help="[cluster] lease in seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    work = args.keep or tempfile.mkdtemp(prefix="tactd-replicas-")
    if args.keep:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    started = time.monotonic()
    db = Database()
    sink = Sink(random.Random(seed + 1))
    sink.arrivals = TimedCounter()  # before any request
    spool = os.path.join(work, "spool")
    os.makedirs(spool)
    replicas = [Replica(args.tactd, work, n, db.url, sink.port, spool, args.lease) for n in (1, 2, 3)]
    feeder = Feeder(replicas, spool, args.rate, random.Random(seed + 2))
    failures = []
    figures = {}
    limit = args.lease + args.lease / 3 + 1
    try:
        for replica in replicas:
            replica.start()
        if not wait_for("three replicas running", lambda: all(r.running() >= 1 for r in replicas)):
            failures.append("the replicas did not start")
            raise StopIteration
        # Two renewals: the first takes everything it can, the next gives the excess up.
        wait_for("the shards shared by three", lambda: len(owners(db)) == 3 and sum(owners(db).values()) == SHARDS,
                 seconds=4 * args.lease)
        figures["shares"] = sorted(owners(db).values())
        feeder.start()
        t0 = time.monotonic()

        def at(fraction):
            time.sleep(max(0.0, fraction * args.seconds - (time.monotonic() - t0)))

        at(0.25)
        killed = replicas[1].ids()[-1]
        kill_time = time.monotonic()
        replicas[1].kill()
        figures["sigkill_takeover_s"] = takeover(db, killed, 2 * limit)
        at(0.5)
        replicas[1].start()
        at(0.65)
        stopped = replicas[2].ids()[-1]
        stop_time = time.monotonic()
        code = replicas[2].stop()
        if code != 0:
            failures.append(f"replica 3 stopped with exit status {code}")
        figures["sigterm_takeover_s"] = takeover(db, stopped, 2 * limit)
        at(1.0)
        feeder.stop_flag.set()
        feeder.join(timeout=PATIENCE)

        expected = set(feeder.accepted)
        for numbers in feeder.spooled.values():
            expected.update(numbers)
        expected_entities = {f"order/B-{n}" for n in expected}

        def statuses():
            return {status: int(count) for status, count in db.sql("SELECT status, COUNT(*) FROM outbox GROUP BY status")}

        def drained():
            if any(name.endswith(".jsonl") for name in os.listdir(spool)):
                return False
            _, entity_keys = sink.snapshot()
            return (expected_entities <= set(entity_keys) and statuses().get("pending", 0) == 0 and
                    int(db.sql("SELECT COUNT(*) FROM intake")[0][0]) == 0)

        if not wait_for("the spool to empty and every notification to arrive", drained):
            failures.append("not drained")
        time.sleep(0.5)  # a late duplicate would show now
        for replica in replicas[:2]:
            code = replica.stop()
            if code != 0:
                failures.append(f"replica {replica.number} stopped with exit status {code}")

        done_dir = os.path.join(spool, "done")
        done = set(os.listdir(done_dir)) if os.path.isdir(done_dir) else set()
        lost_files = [name for name in feeder.spooled if name not in done]
        arrivals, entity_keys = sink.snapshot()
        missing = expected_entities - set(entity_keys)
        unexpected = set(entity_keys) - {f"order/B-{n}" for n in range(1, feeder.next)}
        double_keyed = [e for e, keys in entity_keys.items() if len(keys) > 1]
        notifications = len(arrivals)
        duplicates = sum(count - 1 for count in arrivals.values())
        share = duplicates / notifications if notifications else 0.0
        # A key sent again is in the at-least-once window when its first
        # request came before a replica died or stopped (cut off there) and
        # the next after; any other repeat is a send beyond it.
        with sink.lock:
            times = {key: list(t) for key, t in sink.arrivals.times.items() if len(t) > 1}
        beyond = [key for key, t in times.items()
                  if not any(t[0] <= moment <= t[1] for moment in (kill_time, stop_time))]
        # From a push's 202 to its notification's first arrival at the sink.
        # Two pushes in three reach a replica that does not own the
        # customer's shard: the owner applies them from the shared intake,
        # woken by NOTIFY (docs/scale-out.md).
        with sink.lock:
            first = {key: t[0] for key, t in sink.arrivals.times.items()}
        latencies = sorted(min(first[k] for k in entity_keys[f"order/B-{n}"] if k in first) - when
                           for n, when in feeder.accepted_at.items()
                           if any(k in first for k in entity_keys.get(f"order/B-{n}", ())))
        figures["push_to_sink_ms"] = [round(1000 * latencies[int(q * (len(latencies) - 1))]) for q in (0.5, 0.99)
                                      ] if latencies else None
        forwarded = sum(open(r.log, errors="replace").read().count("intake: applied") for r in replicas)
        if lost_files:
            failures.append(f"{len(lost_files)} spool files not in done/: {sorted(lost_files)[:5]}")
        if missing:
            failures.append(f"{len(missing)} accepted events without their notification: {sorted(missing)[:5]}")
        if unexpected:
            failures.append(f"{len(unexpected)} notifications nobody asked for: {sorted(unexpected)[:5]}")
        if double_keyed:
            failures.append(f"{len(double_keyed)} events decided twice (two keys): {sorted(double_keyed)[:5]}")
        if beyond:
            failures.append(f"{len(beyond)} keys sent again outside the window of a kill or stop: {beyond[:5]}")
        if share >= MAX_DUPLICATE_SHARE:
            failures.append(f"duplicates {share:.2%} of notifications, at least {MAX_DUPLICATE_SHARE:.0%}")
        for what in ("sigkill_takeover_s", "sigterm_takeover_s"):
            if figures.get(what) is None or figures[what] > limit:
                failures.append(f"{what}: {figures.get(what)} (limit {limit:.1f} s)")

        print(f"replica test (seed {seed}): 3 replicas, lease {args.lease} s, {args.seconds:.0f} s of events at "
              f"{args.rate:.0f}/s, {time.monotonic() - started:.1f} s wall time")
        print(f"  shards at start: {figures['shares']}")
        print(f"  SIGKILL of replica 2: survivors owned every shard after "
              f"{figures['sigkill_takeover_s'] if figures['sigkill_takeover_s'] is None else round(figures['sigkill_takeover_s'], 1)} s; "
              f"SIGTERM of replica 3: after "
              f"{figures['sigterm_takeover_s'] if figures['sigterm_takeover_s'] is None else round(figures['sigterm_takeover_s'], 1)} s")
        print(f"  events: {feeder.next - 1} sent, {len(expected)} accepted ({len(feeder.accepted)} pushed, "
              f"{len(expected) - len(feeder.accepted)} spooled in {len(feeder.spooled)} files); "
              f"push answers {dict(feeder.pushes)}")
        print(f"  notifications: {notifications} keys at the sink, {sum(arrivals.values())} requests, "
              f"{duplicates} duplicate deliveries ({share:.2%}, {len(beyond)} outside a kill's window); outbox {statuses()}; "
              f"shared-intake batches applied {forwarded}")
        print(f"  a pushed event's notification at the sink after its 202 (p50, p99 ms, over the whole run, "
              f"kill and stop included): {figures['push_to_sink_ms']}")
        print(f"  missing {len(missing)}, unexpected {len(unexpected)}, decided twice {len(double_keyed)}, "
              f"spool files lost {len(lost_files)}")
    except StopIteration:
        pass
    finally:
        feeder.stop_flag.set()
        for replica in replicas:
            replica.stop()
        sink.stop()
        db.drop()
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print("FAIL: " + failure)
    if failures and not args.keep:
        print(f"  (logs kept in {work})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
