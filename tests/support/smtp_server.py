#!/usr/bin/python3
"""A real SMTP server on 127.0.0.1 (Debian's python3-aiosmtpd) for the
delivery tests: it receives messages as a mail relay would and saves them.

usage: smtp_server.py DIR [--tls starttls|implicit|none] [--login USER:PASSWORD]
                        [--refuse-rcpt ADDRESS]...

With --tls other than none it makes a self-signed certificate for
127.0.0.1 (DIR/cert.pem, for the client's ca_file) with openssl; starttls
refuses MAIL before STARTTLS. With --login it refuses mail without AUTH
(PLAIN or LOGIN, over TLS only) as that user. With --refuse-rcpt it
answers RCPT TO that address with "550 5.1.1 <ADDRESS>: no such user" and
writes a line in DIR/refused.jsonl (n, rcpt, mail_from) for each refusal.
DIR/answers.json (optional, read at each DATA): a list; each message takes
(and removes) the first entry, {"code": 451, "text": "try again later"}, and
is refused with it; without an entry it is accepted with 250.
It writes DIR/port once it listens and, per message, a line in
DIR/messages.jsonl: n, code (the answer), mail_from, rcpt_tos, tls, login,
and the message as Python's email package parses it (headers decoded, each
leaf part's type, charset, transfer encoding and decoded content, defects);
DIR/<n>.eml holds the message as received.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import subprocess
import logging

from aiosmtpd.smtp import SMTP, AuthResult

import scripted

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
parser.add_argument("--login")
parser.add_argument("--refuse-rcpt", action="append", default=[])
args = parser.parse_args()
logging.getLogger("mail.log").setLevel(logging.ERROR)  # not its deprecation notes
DIR = args.dir


class Handler:
    def __init__(self):
        self.count = 0
        self.refused = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in (a.lower() for a in args.refuse_rcpt):
            self.refused += 1
            with open(os.path.join(DIR, "refused.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"n": self.refused, "rcpt": address, "mail_from": envelope.mail_from}) + "\n")
            return f"550 5.1.1 <{address}>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = scripted.take_answer(DIR) or {"code": 250, "text": "2.0.0 Message accepted for delivery"}
        self.count += 1
        with open(os.path.join(DIR, f"{self.count}.eml"), "wb") as f:
            f.write(envelope.original_content)
        record = {"n": self.count, "code": answer["code"], "mail_from": envelope.mail_from,
                  "rcpt_tos": envelope.rcpt_tos,
                  "tls": session.ssl is not None or args.tls == "implicit",
                  "login": session.auth_data if session.authenticated else None}
        record.update(parse(envelope.original_content))
        with open(os.path.join(DIR, "messages.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return f"{answer['code']} {answer['text']}"


def parse(raw):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [{"type": part.get_content_type(), "charset": part.get_content_charset(),
              "encoding": part.get("content-transfer-encoding"), "content": part.get_content()}
             for part in message.walk() if not part.is_multipart()]
    return {"headers": {name.lower(): str(value) for name, value in message.items()},
            "header_names": [name for name, _ in message.items()],
            "type": message.get_content_type(), "parts": parts,
            "defects": [repr(d) for part in message.walk() for d in part.defects]}


def authenticator(server, session, envelope, mechanism, auth_data):
    user, _, password = args.login.partition(":")
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=True, auth_data=user) if ok else AuthResult(success=False, handled=False)


def tls_context():
    cert, key = os.path.join(DIR, "cert.pem"), os.path.join(DIR, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def main():
    handler = Handler()
    context = tls_context() if args.tls != "none" else None
    # With implicit TLS aiosmtpd cannot tell that the connection is secure.
    options = {"hostname": "tactd-test.localhost", "auth_required": bool(args.login),
               "auth_require_tls": args.tls != "implicit",
               "authenticator": authenticator if args.login else None}
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **options), "127.0.0.1", 0,
                                      ssl=context if args.tls == "implicit" else None)
    port = server.sockets[0].getsockname()[1]
    scripted.write_port(DIR, port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
