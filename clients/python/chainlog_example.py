#!/usr/bin/env python3
"""chainlog's HTTP/JSON API (docs/http.md) from Python, with only the standard library.

Appends one event, then a batch (sent gzip-compressed), then reads the tenant's events page by
page until next_cursor is null, and prints pagination.total:

    python3 chainlog_example.py --url http://127.0.0.1:7480 --key clk_...

Every appended event carries an idempotency key, so an append retried after a lost answer
returns the first one's receipt instead of storing the event twice. 429 and 503 answers are
retried after their Retry-After, except 503 "poisoned" (nothing is acknowledged until the
server restarts, so waiting would only delay the error).
"""

import argparse
import gzip
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

RETRIES = 3
BACKOFF_SECS = 0.1
TIMEOUT_SECS = 30


class ChainlogError(Exception):
    """An error answer: {"error": {"code", "message", "index", "field"}}, or, for an answer
    without that body (a proxy's page), the code "http_<status>"."""

    def __init__(self, status, code, message, index=None, field=None, retry_after=None):
        where = f" (event {index}, field {field})" if field is not None else ""
        super().__init__(f"{status} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.message = message
        self.index = index
        self.field = field
        self.retry_after = retry_after  # seconds, when the server said

    def retryable(self):
        return self.status == 429 or (self.status == 503 and self.code != "poisoned")


def error_from(e):
    """The ChainlogError an urllib HTTPError stands for."""
    text = e.read().decode("utf-8", "replace")
    retry_after = None
    header = e.headers.get("Retry-After")
    if header is not None and header.strip().isdigit():
        retry_after = int(header)
    try:
        err = json.loads(text)["error"]
        return ChainlogError(e.code, err["code"], err.get("message", ""), err.get("index"),
                             err.get("field"), retry_after)
    except (ValueError, KeyError, TypeError):
        return ChainlogError(e.code, f"http_{e.code}", text[:200].strip(), retry_after=retry_after)


def call(base_url, key, method, path, body=None, compress=False):
    """One API call with retries; returns the answer's JSON. The body is encoded once, so a
    retry sends the same bytes, and so the same idempotency keys."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
        if compress:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
    for attempt in range(RETRIES + 1):
        request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
        backoff = BACKOFF_SECS * 2 ** attempt
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:  # before URLError: it is one
            err = error_from(e)
            if not err.retryable() or attempt == RETRIES:
                raise err from None
            time.sleep(max(backoff, err.retry_after or 0))
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            # No answer: safe to send again, since reads change nothing and appends are keyed.
            if attempt == RETRIES:
                raise
            time.sleep(backoff)
    raise AssertionError("unreachable: the last attempt returns or raises")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:7480")
    parser.add_argument("--key", required=True, help="an API key, clk_...")
    parser.add_argument("--tenant", default="acme")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    run = uuid.uuid4().hex[:8]  # new keys each run, so each run stores its events

    try:
        receipt = call(base, args.key, "POST", "/api/v1/events", {
            "tenant_id": args.tenant,
            "actor_id": "user-42",
            "action": "document.deleted",
            "resource": "document",
            "resource_id": "doc-7",
            "metadata": {"ip": "10.0.0.1"},
            "idempotency_key": f"example_{run}_single",
        })
        state = "a duplicate of" if receipt["duplicate"] else "stored as"
        print(f"one event: {state} seq {receipt['seq']}, hash {receipt['hash']}")

        batch = [{
            "tenant_id": args.tenant,
            "actor_id": f"user-{i}",
            "action": "document.viewed",
            "resource": "document",
            "resource_id": f"doc-{i}",
            "occurred_at": 1_700_000_000_000 + i * 1000,  # epoch milliseconds
            "backfilled": True,
            "idempotency_key": f"example_{run}_{i}",
        } for i in range(10)]
        receipts = call(base, args.key, "POST", "/api/v1/events", {"events": batch},
                        compress=True)["receipts"]
        print(f"a batch of {len(receipts)}: seqs {receipts[0]['seq']} to {receipts[-1]['seq']}")

        # A page may be short and still have a next one: follow the cursor until it is null.
        params = {"tenant_id": args.tenant, "limit": 100}
        cursor, read, total = None, 0, None
        while True:
            query = dict(params, cursor=cursor) if cursor is not None else params
            page = call(base, args.key, "GET", "/api/v1/events?" + urllib.parse.urlencode(query))
            read += len(page["data"])
            total = page["pagination"]["total"]
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                break
        print(f"read {read} events of tenant {args.tenant}; pagination.total = {total}")
    except ChainlogError as e:
        print(f"chainlog: {e}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        print(f"chainlog: no answer from {base}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
