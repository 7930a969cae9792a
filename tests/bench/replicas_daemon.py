#!/usr/bin/env python3
"""Intake and delivery through one, two and three `tactd run` replicas
sharing one PostgreSQL state, beside PostgreSQL's own ceiling for the same
batched upserts, measured in the same run on the same server.

    replicas_daemon.py BUILD N [REPLICAS ...]     default REPLICAS: 1 2 3

BUILD is the Release build directory (build-bench): its tactd and
tests/webhook_sink are used. A PostgreSQL 15 server is started for the run
(tests/support/postgres_server.sh, syncing every commit: TACTD_PG_DURABLE=1)
and stopped at the end.

ceiling: pgbench, one client per replica, each transaction upserting 1,000
rows of the shape tactd stores (an order with its fields as JSON) into the
`entities` table of a database `tactd migrate` made: rows/s.

For each number of replicas, on a fresh database: the replicas start with
the shipped rules and templates, a push endpoint each and their sms and
email channels as webhooks to one loopback sink (tests/bench/webhook_sink),
held back at 0.001/s. N customers, N orders and then N cancellations (one
apology each) are pushed in requests of 1,000 lines, spread round-robin over
the replicas, 2 keep-alive connections each: intake is observations/s until
the last is answered 202 and the shared intake is empty (everything applied
by its shard's owner). Then SIGHUP reloads the channels at full rate on
every replica and the time runs until the sink has the N apologies:
delivery is notifications/s. Keys the sink saw more than once are counted.
"""
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from delivery_daemon import Pusher, Sink, customer, order, now_text, wait_for, BATCH, SOURCE, TOKEN
from procstat import free_port, cpu_seconds

PG_SCRIPT = os.path.join(SOURCE, "tests", "support", "postgres_server.sh")


def psql(conninfo, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def database(server, name):
    psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(server, f"CREATE DATABASE {name}")
    return re.sub(r"dbname=\S+", f"dbname={name}", server)


def url(conninfo):
    keys = dict(part.split("=", 1) for part in conninfo.split())
    return f"postgresql://{keys['user']}@{keys['host']}:{keys['port']}/{keys['dbname']}"


def write_config(work, name, state, port, sink, rate):
    channel = (f'provider = "webhook"\nurl = "{sink.url}/hook"\nconcurrency = 64\n'
               f'rate = {rate}\nburst = {max(1, int(rate))}\ntimeout = "10s"\n')
    path = os.path.join(work, name + ".toml")
    with open(path, "w") as f:
        f.write(f'[tactd]\nrules = "{SOURCE}/config/rules"\ntemplates = "{SOURCE}/templates"\n'
                f'state = "{state}"\nmerchant = "Bakkerij Bol"\n'
                '[locale]\ntime_zone = "Europe/Amsterdam"\nsupported = ["en", "nl"]\n'
                f'[push]\nlisten = "127.0.0.1:{port}"\ntoken_file = "{work}/token"\n'
                f'[[channel]]\nchannel = "sms"\n{channel}'
                f'[[channel]]\nchannel = "email"\n{channel}')
    return path


def tactd(build):
    return os.path.join(build, "daemon", "app", "tactd")


def ceiling(build, work, server, clients):
    conninfo = database(server, "ceiling")
    config = os.path.join(work, "ceiling.toml")
    with open(config, "w") as f:
        f.write(f'[tactd]\nrules = "{SOURCE}/config/rules"\ntemplates = "{SOURCE}/templates"\n'
                f'state = "{url(conninfo)}"\n')
    subprocess.run([tactd(build), "migrate", "--config", config], check=True, stdout=subprocess.DEVNULL)
    script = os.path.join(work, "upsert.sql")
    fields = ('{"customer":"bc-" || k,"status":"cancelled","cancel_reason":"kitchen overloaded","total":23.5,'
              '"currency":"EUR","merchant":"Trattoria Da Marco","promised_by":"2030-01-01T18:00:00Z"}')
    with open(script, "w") as f:
        f.write("\\set base random(0, 1000000)\n"
                "INSERT INTO entities (type, id, fields, observed_at, parent_type, parent_id, first_seen_at, "
                "status, version) SELECT 'order', 'bo-' || k, "
                f"'{fields}', :base + k, 'customer', 'bc-' || k, :base, 'cancelled', 1 "
                "FROM generate_series(:base, :base + 999) AS k "
                "ON CONFLICT (type, id) DO UPDATE SET fields = excluded.fields, observed_at = excluded.observed_at, "
                "status = excluded.status, version = entities.version + 1;\n")
    out = subprocess.run(["pgbench", "-n", "-f", script, "-c", str(clients), "-j", str(clients), "-T", "10",
                          conninfo], check=True, capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    return tps * 1000


def start(build, work, name, config, port):
    log = open(os.path.join(work, name + ".log"), "w")
    daemon = subprocess.Popen([tactd(build), "run", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return daemon
        except OSError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit(f"replica {name} did not open its push endpoint; see {log.name}")
            time.sleep(0.05)


def replicas(build, work, server, count, n):
    conninfo = database(server, f"replicas{count}")
    state = url(conninfo)
    sink = Sink(build, work)
    daemons = []
    try:
        ports = [free_port() for _ in range(count)]
        configs = [write_config(work, f"r{i}", state, ports[i], sink, 0.001) for i in range(count)]
        for i in range(count):
            daemons.append(start(build, work, f"r{i}", configs[i], ports[i]))
        pushers = [Pusher(port) for port in ports]
        now = now_text()
        lines = ([customer(k, now) for k in range(n)] + [order(k, "placed", now) for k in range(n)]
                 + [order(k, "cancelled", now) for k in range(n)])
        batches = [lines[i:i + BATCH] for i in range(0, len(lines), BATCH)]
        cpu = sum(cpu_seconds(d.pid) for d in daemons)

        async def push_all():
            for p in pushers:
                await p.open(2)
            begin = time.monotonic()
            # In three waves (customers, orders, cancellations), so that no
            # order arrives before its customer on another replica.
            third = len(batches) // 3
            for wave in (batches[:third], batches[third:2 * third], batches[2 * third:]):
                await asyncio.gather(*(pushers[i % count].push(b) for i, b in enumerate(wave)))
            return time.monotonic() - begin
        accepted_s = asyncio.run(push_all())
        # What a replica received for another's shard (or for its own, behind
        # that) is applied from the shared intake after its 202: intake ends
        # when the shared intake is empty.
        begin = time.monotonic() - accepted_s
        while int(subprocess.run(["psql", "-X", "-A", "-t", conninfo, "-c", "SELECT COUNT(*) FROM intake"],
                                 check=True, capture_output=True, text=True).stdout) > 0:
            time.sleep(0.05)
        intake_s = time.monotonic() - begin
        intake_cpu = sum(cpu_seconds(d.pid) for d in daemons) - cpu
        wait_for(sink, 1, daemons[0], os.path.join(work, "r0.log"), 120)
        before = sink.count()
        for i in range(count):
            write_config(work, f"r{i}", state, ports[i], sink, 100000)
        cpu = sum(cpu_seconds(d.pid) for d in daemons)
        begin = time.monotonic()
        for d in daemons:
            d.send_signal(signal.SIGHUP)
        wait_for(sink, n, daemons[0], os.path.join(work, "r0.log"), 900)
        drain_s = time.monotonic() - begin
        drain_cpu = sum(cpu_seconds(d.pid) for d in daemons) - cpu
        keys = [key for _, key in sink.arrivals()]
        repeated = len(keys) - len(set(keys))
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            d.wait(timeout=60)
        sink.stop()
    observations = len(lines)
    drained = n - before
    print(f"replicas {count}: intake {observations} observations accepted in {accepted_s:6.2f} s, applied in "
          f"{intake_s:6.2f} s {observations / intake_s:7.0f} /s "
          f"({intake_cpu * 1e6 / observations:5.0f} us CPU each, all replicas);  delivery {drained} "
          f"{drain_s:6.2f} s {drained / drain_s:7.0f} /s ({drain_cpu * 1e6 / drained:5.0f} us CPU each); "
          f"keys delivered more than once: {repeated}")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build, n = sys.argv[1], int(sys.argv[2])
    counts = [int(c) for c in sys.argv[3:]] or [1, 2, 3]
    work = tempfile.mkdtemp(prefix="tactd-replicas-bench-")
    os.chmod(work, 0o755)
    pg = os.path.join(work, "pg")
    try:
        with open(os.path.join(work, "token"), "w") as f:
            f.write(TOKEN + "\n")
        subprocess.run([PG_SCRIPT, "start", pg], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, TACTD_PG_DURABLE="1"))
        with open(os.path.join(pg, "conninfo")) as f:
            server = f.read().strip()
        for count in counts:
            rows = ceiling(build, work, server, count)
            print(f"ceiling  pgbench, {count} client(s), 1,000-row upserts into entities: {rows:8.0f} rows/s")
            replicas(build, work, server, count, n)
    finally:
        subprocess.run([PG_SCRIPT, "stop", pg], stdout=subprocess.DEVNULL)
        if os.environ.get("KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
