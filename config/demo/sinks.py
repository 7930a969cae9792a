#!/usr/bin/python3
"""The demo's stand-ins for the SMS provider and the mail relay, on
127.0.0.1, each on a free port; .ci/demo starts and stops each by its PID.

usage: sinks.py webhook DIR    an HTTP server for the `webhook` SMS channel
       sinks.py smtp DIR       a plain SMTP server (Debian's python3-aiosmtpd)

Each writes DIR/<mode>.port once it listens, prints every message as it
arrives (time, channel, to, subject, body: decoded, as a person would read
it) and appends it as one JSON line to DIR/<mode>.jsonl for the summary.
The webhook sink checks X-Tactd-Signature against the secret in
TACTD_DEMO_WEBHOOK_SECRET (docs/channels.md); SMTP takes no login and no TLS.
"""
import asyncio
import datetime
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import sys
import textwrap
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLOUR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def style(code, text):
    return f"\033[{code}m{text}\033[0m" if COLOUR else text


def show(record, notes):
    """Prints one message as a block, in a single write so that the other
    processes sharing the terminal cannot cut into it."""
    head = (f"  {style('1;32', '<<')} {record['time']}  {style('1', record['channel'].upper())} to "
            f"{style('1', record['to'])}")
    if notes:
        head += "  " + style("2", "(" + ", ".join(notes) + ")")
    lines = [head]
    if record.get("subject") is not None:
        lines.append("     | " + style("1", "Subject: " + record["subject"]))
        lines.append("     |")
    for line in record["body"].rstrip("\n").split("\n"):
        wrapped = textwrap.wrap(line, 86) or [""]
        lines.extend("     | " + part for part in wrapped)
    text = "\n".join(lines) + "\n\n"
    os.write(sys.stdout.fileno(), text.encode("utf-8", "replace"))


def record_message(folder, mode, record):
    with open(os.path.join(folder, mode + ".jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_port(folder, mode, port):
    path = os.path.join(folder, mode + ".port")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(port))
    os.rename(path + ".tmp", path)


def now():
    return datetime.datetime.now().astimezone().strftime("%H:%M:%S")


# --- the webhook sink: the SMS provider -------------------------------------

def run_webhook(folder):
    secret = os.environ.get("TACTD_DEMO_WEBHOOK_SECRET", "").encode()
    seen = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                message = json.loads(raw)
            except ValueError:
                self.answer(400, {"error": "the body is not JSON"})
                return
            timestamp = self.headers.get("X-Tactd-Timestamp", "")
            expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(expected, self.headers.get("X-Tactd-Signature", ""))
            key = message.get("idempotency_key", "")
            record = {"time": now(), "channel": message.get("channel", "sms"), "to": message.get("to", ""),
                      "subject": message.get("subject"), "body": message.get("body", ""),
                      "kind": message.get("kind"), "rule": message.get("rule"),
                      "customer": message.get("customer"), "locale": message.get("locale"),
                      "key": key, "signed": signed, "repeat": key in seen}
            seen.add(key)
            notes = [f"{record['kind']}, rule {record['rule']}, {record['locale']}",
                     "signature ok" if signed else "BAD SIGNATURE"]
            if record["repeat"]:
                notes.append("a repeat of an earlier request: same Idempotency-Key")
            record_message(folder, "webhook", record)
            show(record, notes)
            if not signed:
                self.answer(401, {"error": "bad signature"})
                return
            self.answer(200, {"id": "demo-%d" % len(seen)})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    write_port(folder, "webhook", server.server_address[1])
    server.serve_forever()


# --- the SMTP server: the mail relay ----------------------------------------

def run_smtp(folder):
    import logging
    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    seen = set()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            text = message.get_body(preferencelist=("plain",))
            # get_content() undoes the quoted-printable and the charset: the text a person reads.
            body = text.get_content() if text is not None else "(no text part)"
            message_id = str(message.get("message-id", ""))
            record = {"time": now(), "channel": "email", "to": ", ".join(envelope.rcpt_tos),
                      "subject": str(message.get("subject", "")), "body": body,
                      "from": str(message.get("from", "")), "key": message_id, "repeat": message_id in seen}
            seen.add(message_id)
            notes = ["from " + record["from"]]
            if record["repeat"]:
                notes.append("a repeat of an earlier message: same Message-ID")
            record_message(folder, "smtp", record)
            show(record, notes)
            return "250 2.0.0 Message accepted for delivery"

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Handler(), hostname="demo-relay.localhost"), "127.0.0.1", 0)
        write_port(folder, "smtp", server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("webhook", "smtp"):
        sys.exit(__doc__)
    # Stopped by .ci/demo with SIGTERM, or by Ctrl-C: leave quietly.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: os._exit(0))
    mode, folder = sys.argv[1], sys.argv[2]
    run_webhook(folder) if mode == "webhook" else run_smtp(folder)


if __name__ == "__main__":
    main()
