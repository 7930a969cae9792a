#!/usr/bin/env python3
"""A loopback HTTP server that plays a webshop's order API and a parcel
carrier's tracking API for integration tests, from fixture files.

usage: api_fixture_server.py DIR

DIR holds, each read again on every request so that a test can change them:
  orders.json     the shop's orders: a list in the shape of the platform's order JSON
  shipments.json  the carrier's answers: {tracking number: tracking response}
  faults.json     optional: {"orders": [fault, ...], "shipments": [...]}; each
                  request to a route takes (and removes) the first fault:
                  {"status": 503, "retry_after": "1"}, {"delay": 2.5} or {"drop": true}
It writes:
  port            the port it listens on, once it does
  requests.jsonl  one line per request: path, query and headers

Routes:
  GET /admin/api/2024-10/orders.json   needs X-Shopify-Access-Token: $SHOP_TOKEN;
      updated_at_min (inclusive), limit, page_info; sorted by updated_at;
      further pages linked by `Link: <...>; rel="next"`.
  GET /track/shipments?trackingNumber=N   needs DHL-API-Key: $DHL_KEY; ETag and
      If-None-Match (304).
"""
import base64
import datetime
import hashlib
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


def read(name, default):
    try:
        with open(os.path.join(DIR, name), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def take_fault(route):
    with LOCK:
        faults = read("faults.json", {})
        queue = faults.get(route, [])
        if not queue:
            return None
        fault = queue.pop(0)
        with open(os.path.join(DIR, "faults.json"), "w", encoding="utf-8") as f:
            json.dump(faults, f)
        return fault


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304:
            self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with LOCK:
            with open(os.path.join(DIR, "requests.jsonl"), "a", encoding="utf-8") as log:
                log.write(json.dumps({"path": url.path, "query": query,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}}) + "\n")
        route = {"/admin/api/2024-10/orders.json": "orders", "/track/shipments": "shipments"}.get(url.path)
        if route is None:
            return self.answer(404, {"errors": "Not Found"})
        fault = take_fault(route)
        if fault and fault.get("drop"):
            self.close_connection = True
            return
        if fault and "delay" in fault:
            time.sleep(fault["delay"])
        if fault and "status" in fault:
            headers = [("Retry-After", fault["retry_after"])] if "retry_after" in fault else []
            return self.answer(fault["status"], {"errors": "injected failure"}, headers)
        if route == "orders":
            return self.orders(query)
        return self.shipments(query)

    def orders(self, query):
        if self.headers.get("X-Shopify-Access-Token") != os.environ.get("SHOP_TOKEN"):
            return self.answer(401, {"errors": "[API] Invalid API key or access token"})
        limit = int(query.get("limit", "50"))
        offset = 0
        minimum = query.get("updated_at_min")
        if "page_info" in query:
            state = json.loads(base64.urlsafe_b64decode(query["page_info"]))
            offset, minimum = state["offset"], state["min"]
        orders = sorted(read("orders.json", []), key=lambda o: when(o["updated_at"]))
        if minimum:
            orders = [o for o in orders if when(o["updated_at"]) >= when(minimum)]
        page = orders[offset:offset + limit]
        headers = []
        if offset + limit < len(orders):
            token = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit, "min": minimum}).encode()).decode()
            link = "http://%s/admin/api/2024-10/orders.json?limit=%d&page_info=%s" % (self.headers["Host"], limit, token)
            headers.append(("Link", '<%s>; rel="next"' % link))
        self.answer(200, {"orders": page}, headers)

    def shipments(self, query):
        if self.headers.get("DHL-API-Key") != os.environ.get("DHL_KEY"):
            return self.answer(401, {"status": 401, "title": "Unauthorized", "detail": "Invalid API key"})
        found = read("shipments.json", {}).get(query.get("trackingNumber", ""))
        if found is None:
            return self.answer(404, {"status": 404, "title": "No result found",
                                     "detail": "No shipment with given tracking number found."})
        body = json.dumps(found).encode()
        etag = '"%s"' % hashlib.sha1(body).hexdigest()
        if self.headers.get("If-None-Match") == etag:
            return self.answer(304, b"", [("ETag", etag)])
        self.answer(200, body, [("ETag", etag)])


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted.write_port(DIR, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
