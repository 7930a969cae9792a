#!/usr/bin/env python3
"""A loopback HTTP server that records every request and answers as a test
scripts it: the stand-in for email and SMS providers and webhook sinks in
delivery tests, and for a JSON API that tactd polls (GET).

usage: recording_server.py DIR

DIR/answers.json (optional, read on every request): a list; each request
takes (and removes) the first entry:
  {"status": 429, "retry_after": "1", "body": {...}}   answer this
  {"delay": 2.5}                                        answer 202 late
  {"delay": 2.5, "status": 200, "body": {...}}          answer this, late
  {"drop": true}                                        hang up without answering
Without an entry the answer is 202 with {"id": "msg-<n>"}.
It writes DIR/port once it listens, and one line per request to
DIR/requests.jsonl: method, path, query, headers (lower-case names), body,
and the arrival time in seconds.
"""
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import scripted

DIR = sys.argv[1]
LOCK = threading.Lock()
COUNT = [0]


def take_answer():
    with LOCK:
        COUNT[0] += 1
        return scripted.take_answer(DIR) or {}, COUNT[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.do_POST()

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with LOCK:
            with open(os.path.join(DIR, "requests.jsonl"), "a", encoding="utf-8") as log:
                log.write(json.dumps({"method": self.command, "path": url.path,
                                      "query": dict(urllib.parse.parse_qsl(url.query)),
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body.decode("utf-8", "replace"), "at": time.time()}) + "\n")
        answer, n = take_answer()
        if answer.get("drop"):
            self.close_connection = True
            return
        time.sleep(answer.get("delay", 0))
        data = json.dumps(answer.get("body", {"id": "msg-%d" % n})).encode()
        self.send_response(answer.get("status", 202))
        if "retry_after" in answer:
            self.send_header("Retry-After", answer["retry_after"])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted.write_port(DIR, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
