#!/usr/bin/env python3
"""A loopback webhook sink that is up but flaky, for fault tests and the
faults benchmark: it answers some requests 5xx, lets some hang past the
client's timeout, and now and then answers a burst of 429 with Retry-After.

usage: flaky_sink.py DIR [--fail 0.3] [--hang 0.1] [--hang-seconds 5]
                         [--burst-every 100] [--burst-length 10]
                         [--retry-after 1] [--seed 1]

Each request draws, in this order: inside a burst of 429 (the first
--burst-length requests after every --burst-every requests), `429` with
`Retry-After: --retry-after`; with probability --hang, no answer for
--hang-seconds and then the connection closed; with probability --fail,
`503` (no Retry-After); else `202`. All zero: a healthy sink.

It writes DIR/port once it listens, and one line per request to
DIR/arrivals.jsonl: the Idempotency-Key (or the webhook body's
idempotency_key), the arrival time in seconds, and the answer
("202", "503", "429" or "hang") with its retry_after.
"""
import argparse
import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import scripted

ARGS = None
LOCK = threading.Lock()
STATE = {"count": 0, "random": None, "log": None}


def decide():
    with LOCK:
        n = STATE["count"]
        STATE["count"] += 1
        r = STATE["random"].random()
    if ARGS.burst_every and n % ARGS.burst_every >= ARGS.burst_every - ARGS.burst_length:
        return "429"
    if r < ARGS.hang:
        return "hang"
    if r < ARGS.hang + ARGS.fail:
        return "503"
    return "202"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = self.headers.get("Idempotency-Key")
        if not key:
            try:
                key = json.loads(body).get("idempotency_key")
            except ValueError:
                key = None
        answer = decide()
        record = {"key": key, "at": arrived, "answer": answer}
        if answer == "429":
            record["retry_after"] = ARGS.retry_after
        with LOCK:
            STATE["log"].write(json.dumps(record) + "\n")
            STATE["log"].flush()
        if answer == "hang":
            time.sleep(ARGS.hang_seconds)
            self.close_connection = True
            return
        data = b'{"id": "accepted"}' if answer == "202" else b'{"error": "try again"}'
        self.send_response(int(answer))
        if answer == "429":
            self.send_header("Retry-After", str(ARGS.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--fail", type=float, default=0.3)
    parser.add_argument("--hang", type=float, default=0.1)
    parser.add_argument("--hang-seconds", type=float, default=5)
    parser.add_argument("--burst-every", type=int, default=100)
    parser.add_argument("--burst-length", type=int, default=10)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    ARGS = parser.parse_args()
    STATE["random"] = random.Random(ARGS.seed)
    STATE["log"] = open(os.path.join(ARGS.dir, "arrivals.jsonl"), "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    scripted.write_port(ARGS.dir, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
