#!/usr/bin/env python3
"""A webhook receiver on loopback for tests/integration/test_webhooks.sh.

usage: webhook_receiver.py PORT LOG FIXED_FLAG PATH=SECRET_FILE...

Serves POST /PATH for each PATH given. Every request is appended to LOG as
one JSON line: path, delivery id, attempt, event kind, whether the
signature verified (recomputed here with Python's hmac, not Trove's code),
the coin's id, shard, aseq and revoked flag, and the status answered.

Behaviour, by path:
  flaky   per delivery id, deterministic: a fifth answer 500 on their first
          attempt, a twentieth sleep past the sender's timeout (1.5 s) on
          their first attempt and then answer 200; the rest 200.
  broken  500 until the file FIXED_FLAG exists, then 200.
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LOG = sys.argv[2]
FIXED = sys.argv[3]
SECRETS = {}
for arg in sys.argv[4:]:
    path, secret_file = arg.split("=", 1)
    with open(secret_file, "rb") as f:
        SECRETS["/" + path] = f.read().strip()
LOCK = threading.Lock()


def verify(secret, header, body):
    """True when header is t=TS,v1=HEX with HEX = HMAC-SHA256(secret, TS.body)
    and TS within five minutes of now."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        want = hmac.new(secret, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
        return abs(time.time() - ts) < 300 and hmac.compare_digest(want, parts["v1"])
    except (KeyError, ValueError):
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self.headers.get("Trove-Delivery", "")
        attempt = int(self.headers.get("Trove-Attempt", "0"))
        secret = SECRETS.get(self.path)
        record = {"t": round(time.time(), 3), "path": self.path, "id": delivery, "attempt": attempt,
                  "event": self.headers.get("Trove-Event", ""),
                  "sig_ok": secret is not None and verify(secret, self.headers.get("Trove-Signature", ""), body)}
        try:
            doc = json.loads(body)
            coin = doc["coin"]
            record.update(body_id=doc["id"], kind=doc["kind"], coin=coin["id"], shard=coin["shard"],
                          aseq=coin["aseq"], revoked=coin["revoked"])
        except (ValueError, KeyError, TypeError):
            record["bad_body"] = True
        digest = int(hashlib.sha256(delivery.encode()).hexdigest(), 16)
        status = 200
        if self.path == "/flaky" and attempt == 1 and digest % 5 == 0:
            status = 500
        elif self.path == "/flaky" and attempt == 1 and digest % 20 == 1:
            time.sleep(1.5)
        elif self.path == "/broken" and not os.path.exists(FIXED):
            status = 500
        elif secret is None:
            status = 404
        record["status"] = status
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the sender gave up (timeout): it sends again


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets a burst of new connections

    def handle_error(self, request, client_address):
        pass  # a connection the sender dropped (killed, timed out): expected here


Server(("127.0.0.1", PORT), Handler).serve_forever()
