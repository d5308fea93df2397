#!/usr/bin/env python3
"""A partner's first Trove integration, with the standard library only.

Submits events for one user over HTTP (POST /v1/events) and reads the
user's balance (GET /v1/users/{user}/balance); docs/console.md, "Clients".

    TROVE_URL=http://127.0.0.1:7650 TROVE_KEY=$(cat trove-data/web.key) \
        python3 etc/examples/partner.py u42 checkin visit

The key needs the scopes events:write and users:read (docs/security.md).
Events answered `retry` are sent again (same ids: Trove counts each once);
a 429 waits for its Retry-After.
"""
import datetime
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


class TroveError(Exception):
    def __init__(self, status, code, detail):
        super().__init__(f"HTTP {status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class Trove:
    def __init__(self, url, key, source):
        self.url, self.key, self.source = url.rstrip("/"), key, source

    def _call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e)
            except ValueError:
                err = {}
            raise TroveError(e.code, err.get("error", "http_error"), err.get("detail", "")) from None

    def submit(self, user, types):
        """Send one event per type; returns the answer of the last try."""
        ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        events = [{"source": self.source, "id": f"partner-{uuid.uuid4()}", "user": user, "type": t, "ts": ts}
                  for t in types]
        for attempt in range(5):
            try:
                # The same body gets the same key: a resend after a lost
                # answer is answered as the first time.
                key = hashlib.sha256(json.dumps(events).encode()).hexdigest()[:32]
                answer = self._call("POST", "/v1/events", events, {"Idempotency-Key": key})
            except TroveError as e:
                if e.status in (429, 503) and attempt < 4:
                    time.sleep(1)
                    continue
                raise
            retry = [events[r["index"]] for r in answer["results"] if r["status"] == "retry"]
            if not retry:
                return answer
            events = retry
            time.sleep(1)
        return answer

    def balance(self, user):
        return self._call("GET", f"/v1/users/{urllib.parse.quote(user, safe='')}/balance")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    trove = Trove(os.environ.get("TROVE_URL", "http://127.0.0.1:7650"), os.environ["TROVE_KEY"],
                  os.environ.get("TROVE_SOURCE", "web"))
    user, types = sys.argv[1], sys.argv[2:]
    if types:
        answer = trove.submit(user, types)
        for r in answer["results"]:
            print(f"event {r['id']}: {r['status']}{' ' + r.get('reason', '') if r['status'] != 'accepted' else ''}")
    print(json.dumps(trove.balance(user)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
