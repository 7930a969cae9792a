#!/usr/bin/env python3
"""The delivery and latency benchmarks through the real daemon.

    delivery_daemon.py BUILD drain N
    delivery_daemon.py BUILD latency RATE SECONDS

BUILD is the Release build directory (build-bench): its tactd and
tests/webhook_sink are used. The daemon runs the shipped rules and templates
with a push endpoint; its sms and email channels are webhooks to the
loopback sink (tests/bench/webhook_sink.cpp, keep-alive, one thread), with
`concurrency` 64 and no rate limit to speak of. Each notification is the
shipped order-cancelled apology, one per order, to customers of its own.

drain: N customers and N orders are pushed, then each order is cancelled,
while the channels' rate is 0.001/s (one notification goes out): a backlog
of N due notifications. SIGHUP reloads the channels with their full rate;
the time runs from there until the sink has all N. Printed: notifications/s,
the daemon's CPU seconds and resident memory, and p50/p99 of the time from
the start of the drain to each notification's arrival. Beside it, the
sink's own ceiling: wrk with 64 keep-alive connections posting a body of
the same size, in the same run; and tactd's HTTP client alone
(http_client_bench: curl on one loop, 64 in flight, no store), what one
loop can send at most.

latency: RATE*SECONDS customers and orders are pushed first; then one push
per order cancels it, at RATE a second for SECONDS (over 32 keep-alive
connections, each push one observation). Printed: p50, p99 and the maximum
from sending a push to its notification arriving at the sink (both
CLOCK_MONOTONIC), and how long the pushes took to be answered.

Environment: PROFILE="perf record ... -p" attaches that command to the
daemon (drain: for the drain; latency: for the timed pushes and what
follows until the sink has them all); MEMORY=FILE samples the daemon's
/proc/PID/smaps_rollup (resident, anonymous, file-backed, shared) and
VmHWM every 0.25 s from its start, one line each, into FILE, and its
largest mappings at the end; MAX_HELD_BYTES=N sets [push] max_held_bytes;
DAEMON_ENV="NAME=VALUE ..." adds to the
daemon's environment, e.g. heaptrack's preload library
(`LD_PRELOAD=.../libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT=FILE`, then
`heaptrack_interpret <FILE | gzip >FILE.gz` for heaptrack_print).
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from procstat import free_port, cpu_seconds, rss_mb

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token"
CONNECTIONS = 32
BATCH = 1000


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Sink:
    def __init__(self, build, work):
        portfile = os.path.join(work, "sink.port")
        if os.path.exists(portfile):  # an earlier sink's, in the same folder: not this one's port
            os.remove(portfile)
        self.process = subprocess.Popen([os.path.join(build, "tests", "webhook_sink"), portfile])
        deadline = time.monotonic() + 10
        while not os.path.exists(portfile):
            if time.monotonic() > deadline:
                sys.exit("the sink did not start")
            time.sleep(0.01)
        with open(portfile) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return answer.read().decode()

    def count(self):
        return int(self.get("/count"))

    def arrivals(self):
        out = []
        for line in self.get("/arrivals").splitlines():
            ns, key = line.split(" ", 1)
            out.append((int(ns) / 1e9, key))
        return out

    def ceiling(self, work, body_size):
        script = os.path.join(work, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.body = string.rep("x", {body_size})\n')
        out = subprocess.run(["wrk", "-t1", "-c64", "-d5s", "-s", script, self.url + "/"],
                             capture_output=True, text=True, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def client_ceiling(self, build, requests, body_size):
        """tactd's HTTP client alone (tests/bench/http_client_bench.cpp): curl
        on one loop, 64 requests in flight, no store: (requests/s, us CPU each)."""
        out = subprocess.run([os.path.join(build, "tests", "http_client_bench"), self.url + "/", str(requests),
                              "64", str(body_size)], capture_output=True, text=True, check=True).stdout
        m = re.search(r": (\d+) /s, ([\d.]+) us CPU each", out)
        return float(m.group(1)), float(m.group(2))

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def write_config(work, sink, rate):
    channel = (f'provider = "webhook"\nurl = "{sink.url}/hook"\nconcurrency = 64\n'
               f'rate = {rate}\nburst = {max(1, int(rate))}\ntimeout = "10s"\n')
    config = (f'[tactd]\nrules = "{SOURCE}/config/rules"\ntemplates = "{SOURCE}/templates"\n'
              'state = "state.db"\nmerchant = "Bakkerij Bol"\n'
              + (f'sync = "{os.environ["SYNC"]}"\n' if os.environ.get("SYNC") else '')
              + 
              '[locale]\ntime_zone = "Europe/Amsterdam"\nsupported = ["en", "nl"]\n'
              f'[push]\nlisten = "127.0.0.1:{write_config.port}"\ntoken_file = "token"\n'
              + (f'max_held_bytes = {os.environ["MAX_HELD_BYTES"]}\n' if os.environ.get("MAX_HELD_BYTES") else '')
              + (f'[log]\nlevel = "{os.environ["LOG_LEVEL"]}"\n' if os.environ.get("LOG_LEVEL") else '')
              + f'[[channel]]\nchannel = "sms"\n{channel}'
              f'[[channel]]\nchannel = "email"\n{channel}')
    with open(os.path.join(work, "tactd.toml"), "w") as f:
        f.write(config)


def customer(k, now):
    return {"type": "customer", "id": f"bc-{k:06}", "observed_at": now,
            "fields": {"name": f"Customer {k}", "phone": f"+316{k:08}", "email": f"c{k}@example.nl",
                       "locale": "en", "timezone": "Europe/Amsterdam", "prefers": "sms"}}


def order(k, status, now):
    return {"type": "order", "id": f"bo-{k:06}", "observed_at": now,
            "fields": {"customer": f"bc-{k:06}", "status": status, "cancel_reason": "kitchen overloaded",
                       "total": 23.5, "currency": "EUR", "merchant": "Trattoria Da Marco",
                       "promised_by": "2030-01-01T18:00:00Z"}}


def now_text():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Pusher:
    """Keep-alive connections to the push endpoint.

    A push refused 503 with Retry-After (the daemon holds max_held_bytes of
    bodies already) is sent again after it, on a new connection (the daemon
    closes the one it refused on), and counted in `refused`. A large push
    (more than one line) asks first (Expect: 100-continue), so that a refused
    body is never sent.
    """

    def __init__(self, port):
        self.port = port
        self.free = asyncio.Queue()
        self.refused = 0

    async def open(self, n):
        for _ in range(n):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def push(self, lines):
        body = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
        expect = len(lines) > 1
        while True:
            reader, writer = await self.free.get()
            try:
                writer.write(b"POST /v1/observations HTTP/1.1\r\nHost: bench\r\n"
                             b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                             b"Content-Type: application/x-ndjson\r\n" +
                             (b"Expect: 100-continue\r\n" if expect else b"") +
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" +
                             (b"" if expect else body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if status == 100:
                    writer.write(body)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                answer = await reader.readexactly(length)
                if status == 503:
                    self.refused += 1
                    retry = re.search(rb"(?i)retry-after:\s*(\d+)", head)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    await asyncio.sleep(int(retry.group(1)) if retry else 1)
                    continue
                if status != 202:
                    sys.exit(f"push answered {status}: {answer[:200]!r}")
                return
            finally:
                self.free.put_nowait((reader, writer))


class MemorySampler:
    """With MEMORY=FILE: the daemon's memory every 0.25 s, one line each."""

    FIELDS = ("Rss", "Anonymous", "Pss_File", "Pss_Shmem", "Private_Dirty")

    def __init__(self, pid):
        self.pid = pid
        self.stop_event = threading.Event()
        self.file = open(os.environ["MEMORY"], "w") if os.environ.get("MEMORY") else None
        self.thread = None
        self.start = time.monotonic()
        self.mark = ""
        if self.file:
            self.file.write("seconds " + " ".join(f + "_kB" for f in self.FIELDS) + " VmHWM_kB phase\n")
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

    def run(self):
        while not self.stop_event.wait(0.25):
            try:
                values = {}
                with open(f"/proc/{self.pid}/smaps_rollup") as f:
                    for line in f:
                        name, _, rest = line.partition(":")
                        if name in self.FIELDS:
                            values[name] = rest.split()[0]
                with open(f"/proc/{self.pid}/status") as f:
                    hwm = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                return
            self.file.write(f"{time.monotonic() - self.start:7.2f} "
                            + " ".join(values.get(f, "0") for f in self.FIELDS) + f" {hwm} {self.mark}\n")
            self.file.flush()

    def stop(self):
        """Ends the sampling, with the daemon's largest mappings by Rss."""
        if not self.thread:
            return
        self.stop_event.set()
        self.thread.join()
        mappings, name, rss = [], "", 0
        try:
            with open(f"/proc/{self.pid}/smaps") as f:
                for line in f:
                    head = line.split()
                    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                        name = head[5] if len(head) > 5 else "[anonymous]"
                    elif head[0] == "Rss:":
                        mappings.append((int(head[1]), name))
        except OSError:
            pass
        by_name = {}
        for kb, name in mappings:
            by_name[name] = by_name.get(name, 0) + kb
        self.file.write("# Rss by mapping at the end (kB)\n")
        for name, kb in sorted(by_name.items(), key=lambda item: -item[1])[:15]:
            self.file.write(f"# {kb:8} {name}\n")
        self.file.close()


def start_daemon(build, work):
    log = open(os.path.join(work, "log"), "w")
    env = dict(os.environ)
    for setting in os.environ.get("DAEMON_ENV", "").split():  # e.g. LD_PRELOAD=... for heaptrack
        name, _, value = setting.partition("=")
        env[name] = value
    daemon = subprocess.Popen([os.path.join(build, "daemon", "app", "tactd"), "run", "--config",
                               os.path.join(work, "tactd.toml")], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", write_config.port), timeout=1).close()
            return daemon
        except OSError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("the push endpoint did not open; see " + log.name)
            time.sleep(0.05)


async def push_population(pusher, n, cancel):
    now = now_text()
    lines = [customer(k, now) for k in range(n)] + [order(k, "placed", now) for k in range(n)]
    if cancel:
        lines += [order(k, "cancelled", now) for k in range(n)]
    await asyncio.gather(*(pusher.push(lines[i:i + BATCH]) for i in range(0, len(lines), BATCH)))


def wait_for(sink, n, daemon, log, limit):
    deadline = time.monotonic() + limit
    while sink.count() < n:
        if daemon.poll() is not None:
            sys.exit("tactd exited; see " + log)
        if time.monotonic() > deadline:
            sys.exit(f"the sink has {sink.count()} of {n} notifications after {limit} s; see {log}")
        time.sleep(0.005)


def drain(build, work, n):
    sink = Sink(build, work)
    daemon = None
    try:
        write_config(work, sink, 0.001)
        daemon = start_daemon(build, work)
        memory = MemorySampler(daemon.pid)
        memory.mark = "fill"
        pusher = Pusher(write_config.port)

        async def fill():
            await pusher.open(4)
            await push_population(pusher, n, True)
        asyncio.run(fill())
        wait_for(sink, 1, daemon, os.path.join(work, "log"), 60)  # the first, through the one token
        before = sink.count()
        write_config(work, sink, 100000)
        cpu = cpu_seconds(daemon.pid)
        profiler = None
        if os.environ.get("PROFILE"):  # a command to attach to the daemon, e.g. "perf record -g -p"
            profiler = subprocess.Popen(os.environ["PROFILE"].split() + [str(daemon.pid)])
            time.sleep(1)
        start = time.monotonic()
        memory.mark = "drain"
        daemon.send_signal(signal.SIGHUP)
        wait_for(sink, n, daemon, os.path.join(work, "log"), 600)
        seconds = time.monotonic() - start
        cpu = cpu_seconds(daemon.pid) - cpu
        rss = rss_mb(daemon.pid)
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait()
        arrivals = [t - start for t, _ in sink.arrivals()[before:]]
        keys = n - before
        memory.stop()
        ceiling = sink.ceiling(work, 520)
        client, client_cpu = sink.client_ceiling(build, max(n, 10000), 520)
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        sink.stop()
    rate = keys / seconds
    print(f"drain    {keys:7} notifications {seconds:6.2f} s {rate:8.0f} /s  CPU {cpu:5.2f} s "
          f"({cpu * 1e6 / keys:5.1f} us each)  RSS {rss:.0f} MB  from the drain's start to arrival: "
          f"p50 {percentile(arrivals, 50) * 1e3:.0f} ms p99 {percentile(arrivals, 99) * 1e3:.0f} ms")
    print(f"ceiling  the sink under wrk -t1 -c64, 520-byte POSTs: {ceiling:8.0f} /s;  "
          f"drain / ceiling = {rate / ceiling:.2f}")
    print(f"client   tactd's HTTP client alone, 64 in flight, 520-byte POSTs: {client:8.0f} /s "
          f"({client_cpu:.1f} us CPU each);  drain / client = {rate / client:.2f}")


def latency(build, work, rate, seconds):
    n = int(rate * seconds)
    sink = Sink(build, work)
    daemon = None
    try:
        write_config(work, sink, 100000)
        daemon = start_daemon(build, work)
        memory = MemorySampler(daemon.pid)
        memory.mark = "population"
        pusher = Pusher(write_config.port)
        sent = {}
        answered = []
        profiler = []
        refused = []  # pushes refused 503 (max_held_bytes) in the population, then at RATE

        async def run():
            await pusher.open(CONNECTIONS)
            await push_population(pusher, n, False)
            refused.append(pusher.refused)
            if os.environ.get("PROFILE"):
                profiler.append(subprocess.Popen(os.environ["PROFILE"].split() + [str(daemon.pid)]))
            await asyncio.sleep(1)
            memory.mark = "pushes"
            start = time.monotonic()
            tasks = []

            async def one(k):
                t = time.monotonic()
                sent[k] = t
                await pusher.push([order(k, "cancelled", now_text())])
                answered.append(time.monotonic() - t)
            for k in range(n):
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(k)))
            await asyncio.gather(*tasks)
            refused.append(pusher.refused - refused[0])
        asyncio.run(run())
        memory.mark = "delivering"
        wait_for(sink, n, daemon, os.path.join(work, "log"), 60)
        cpu = cpu_seconds(daemon.pid)
        rss = rss_mb(daemon.pid)
        for p in profiler:
            p.send_signal(signal.SIGINT)
            p.wait()
        memory.stop()
        waits = []
        for t, key in sink.arrivals():
            match = re.search(r"bo-(\d{6})", key)
            if match and int(match.group(1)) in sent:
                waits.append(t - sent[int(match.group(1))])
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        sink.stop()
    print(f"latency  {rate:5.0f}/s for {seconds:3.0f} s: {len(waits)} notifications, push to sink "
          f"p50 {percentile(waits, 50) * 1e3:5.1f} ms p99 {percentile(waits, 99) * 1e3:5.1f} ms "
          f"max {max(waits) * 1e3:5.1f} ms; push answered p50 {percentile(answered, 50) * 1e3:.1f} ms "
          f"p99 {percentile(answered, 99) * 1e3:.1f} ms; CPU {cpu:.1f} s, RSS {rss:.0f} MB; "
          f"refused 503: {refused[0]} population pushes, {refused[1]} at {rate:.0f}/s")


def main():
    build, mode = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="tactd-delivery-bench-")
    try:
        with open(os.path.join(work, "token"), "w") as f:
            f.write(TOKEN + "\n")
        write_config.port = free_port()
        if mode == "drain":
            drain(build, work, int(sys.argv[3]))
        elif mode == "latency":
            latency(build, work, float(sys.argv[3]), float(sys.argv[4]))
        else:
            sys.exit(__doc__)
    finally:
        if os.environ.get("KEEP"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
