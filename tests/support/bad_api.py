#!/usr/bin/env python3
"""A loopback JSON API that misbehaves as a test scripts it: the polled
source of fault tests.

usage: bad_api.py DIR

DIR/answers.json (read on every request): a list; each GET takes (and
removes) the first entry, a string:
  "garbage"        200, a body that is not JSON at all
  "truncated"      200, JSON cut off in the middle
  "huge"           200, a 50 MB JSON body with its Content-Length
  "huge_chunked"   200, a 50 MB JSON body, chunked (no length up front)
  "hang"           no answer for 30 s
Without an entry: 200, {"orders": [one order]}.
It writes DIR/port once it listens, and DIR/requests.jsonl: one line per
request with its arrival time and the answer given.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import scripted

DIR = sys.argv[1]
LOCK = threading.Lock()
GOOD = json.dumps({"orders": [{"id": "G-1", "customer": "c-1", "status": "placed",
                               "updated_at": "2026-11-20T10:00:00Z"}]}).encode()
MB = 1 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with LOCK:
            answer = scripted.take_answer(DIR) or "good"
            with open(os.path.join(DIR, "requests.jsonl"), "a", encoding="utf-8") as log:
                log.write(json.dumps({"at": time.time(), "answer": answer}) + "\n")
        try:
            self.answer(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def answer(self, answer):
        if answer == "hang":
            time.sleep(30)
            self.close_connection = True
            return
        if answer in ("huge", "huge_chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            chunk = b'{"id": "x", "pad": "' + b"x" * (MB - 40) + b'"},\n'
            if answer == "huge":
                self.send_header("Content-Length", str(len(b'{"orders": [') + 50 * len(chunk) + 2))
                self.end_headers()
                self.wfile.write(b'{"orders": [')
                for _ in range(50):
                    self.wfile.write(chunk)
                self.wfile.write(b"]}")
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(50):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            return
        body = {"garbage": b"<html><body>502 Bad Gateway</body></html>\x00\xff",
                "truncated": GOOD[:len(GOOD) // 2]}.get(answer, GOOD)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted.write_port(DIR, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
