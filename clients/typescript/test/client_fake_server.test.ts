// The client against a fake server made with node:http: what a real chainlogd cannot be made to
// do on demand (busy, poisoned, shutting down, a proxy's error page, a dropped or stalled stream).

import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { ChainlogClient, ChainlogError, type StoredEvent } from '../src/index.js';

const KEY = 'clk_' + '0'.repeat(48);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RECEIPT = { seq: 41, created_at: '2026-12-02T10:00:00.123456789Z', hash: 'ab'.repeat(32), duplicate: false };
const EVENT = { tenant_id: 'acme', actor_id: 'user-42', action: 'document.deleted', resource: 'document' };

/** A request as the fake server saw it. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** The nth request (0 first), once its body is in, and the response to write. */
type Handler = (req: Seen, res: http.ServerResponse, n: number) => void;

interface Fake {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function fakeServer(handler: Handler): Promise<Fake> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      handler(s, res, seen.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function reply(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function errorBody(code: string, message: string, index: number | null = null, field: string | null = null) {
  return { error: { code, message, index, field } };
}

function client(fake: Fake, extra: Partial<ConstructorParameters<typeof ChainlogClient>[0]> = {}): ChainlogClient {
  return new ChainlogClient({ baseUrl: fake.url, apiKey: KEY, backoffMs: 5, ...extra });
}

/** Runs `body` with a fake server, closed afterwards whatever happens. */
async function withFake(handler: Handler, body: (fake: Fake) => Promise<void>): Promise<void> {
  const fake = await fakeServer(handler);
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
}

/** Asserts that `p` rejects with a ChainlogError having these fields. */
async function rejectsWith(p: Promise<unknown>, fields: Partial<ChainlogError>): Promise<ChainlogError> {
  let caught: unknown;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof ChainlogError, `not a ChainlogError: ${String(caught)}`);
  for (const [name, value] of Object.entries(fields)) {
    assert.deepEqual((caught as unknown as Record<string, unknown>)[name], value, name);
  }
  return caught;
}

test('track: 429 with Retry-After is waited out and retried with the same body', async () => {
  await withFake(
    (_req, res, n) => {
      if (n === 0) reply(res, 429, errorBody('busy', 'the queue is full'), { 'retry-after': '1' });
      else reply(res, 201, RECEIPT);
    },
    async (fake) => {
      const started = Date.now();
      const receipt = await client(fake).track(EVENT);
      const waited = Date.now() - started;
      assert.deepEqual(receipt, RECEIPT);
      assert.equal(fake.seen.length, 2);
      assert.ok(waited >= 950, `retried after ${waited} ms, before Retry-After's 1 s`);
      const [first, second] = fake.seen;
      assert.equal(first.method, 'POST');
      assert.equal(first.url, '/api/v1/events');
      assert.equal(first.headers.authorization, `Bearer ${KEY}`);
      assert.equal(first.headers['content-type'], 'application/json');
      assert.equal(second.body, first.body);
      const sent = JSON.parse(first.body);
      assert.match(sent.idempotency_key, UUID);
      assert.deepEqual(sent, { ...EVENT, idempotency_key: sent.idempotency_key });
    },
  );
});

test('track: 503 poisoned is not retried', async () => {
  await withFake(
    (_req, res) => reply(res, 503, errorBody('poisoned', 'a sync failed')),
    async (fake) => {
      await rejectsWith(client(fake).track(EVENT), { status: 503, code: 'poisoned', message: 'a sync failed' });
      assert.equal(fake.seen.length, 1);
    },
  );
});

test('track: 503 shutting_down is retried with the same body', async () => {
  await withFake(
    (_req, res, n) => {
      if (n === 0) reply(res, 503, errorBody('shutting_down', 'the server is stopping'));
      else reply(res, 201, RECEIPT);
    },
    async (fake) => {
      assert.deepEqual(await client(fake).track(EVENT), RECEIPT);
      assert.equal(fake.seen.length, 2);
      assert.equal(fake.seen[1].body, fake.seen[0].body);
    },
  );
});

test('track: retries stop after `retries`, with the last error', async () => {
  await withFake(
    (_req, res) => reply(res, 429, errorBody('busy', 'rate limited'), { 'retry-after': '0' }),
    async (fake) => {
      await rejectsWith(client(fake, { retries: 2 }).track(EVENT), { status: 429, code: 'busy', retryAfterMs: 0 });
      assert.equal(fake.seen.length, 3);
    },
  );
});

test('track: a connection dropped before the answer is retried with the same idempotency key', async () => {
  await withFake(
    (_req, res, n) => {
      if (n === 0) res.destroy();
      else reply(res, 200, { ...RECEIPT, duplicate: true });
    },
    async (fake) => {
      const receipt = await client(fake).track(EVENT, { idempotencyKey: 'req-8f2c' });
      assert.equal(receipt.duplicate, true);
      assert.equal(fake.seen.length, 2);
      assert.equal(fake.seen[1].body, fake.seen[0].body);
      assert.equal(JSON.parse(fake.seen[0].body).idempotency_key, 'req-8f2c');
    },
  );
});

test('track: the event\'s own idempotency key is kept; a different one in opts is refused', async () => {
  await withFake(
    (_req, res) => reply(res, 201, RECEIPT),
    async (fake) => {
      const c = client(fake);
      await c.track({ ...EVENT, idempotency_key: 'mine' });
      assert.equal(JSON.parse(fake.seen[0].body).idempotency_key, 'mine');
      await assert.rejects(c.track({ ...EVENT, idempotency_key: 'mine' }, { idempotencyKey: 'other' }), TypeError);
      assert.equal(fake.seen.length, 1);
    },
  );
});

test('network: a refused connection is a ChainlogError "network" with the cause, after the retries', async () => {
  const fake = await fakeServer(() => {});
  await fake.close(); // nothing listens on its port now
  const e = await rejectsWith(client(fake, { retries: 1 }).get(0), { status: 0, code: 'network' });
  assert.ok(e.cause !== undefined);
});

test('network: timeoutMs bounds an attempt that gets no answer', async () => {
  await withFake(
    () => {}, // never answers
    async (fake) => {
      const e = await rejectsWith(client(fake, { retries: 0, timeoutMs: 50 }).head(), { status: 0, code: 'network' });
      assert.match(e.message, /no answer within 50 ms/);
    },
  );
});

test('errors: the JSON error body becomes the ChainlogError\'s fields, exactly; 422 is not retried', async () => {
  await withFake(
    (_req, res) => reply(res, 422, errorBody('invalid_event', 'actor_id is required', 3, 'actor_id')),
    async (fake) => {
      const e = await rejectsWith(client(fake).trackBatch([EVENT, EVENT, EVENT, EVENT]), {
        status: 422,
        code: 'invalid_event',
        message: 'actor_id is required',
        index: 3,
        field: 'actor_id',
        retryAfterMs: undefined,
      });
      assert.equal(e.name, 'ChainlogError');
      assert.ok(e instanceof Error);
      assert.equal(fake.seen.length, 1);
    },
  );
});

test('errors: an HTML error page is still a ChainlogError, code http_502, not retried', async () => {
  await withFake(
    (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    },
    async (fake) => {
      const e = await rejectsWith(client(fake).stats(), { status: 502, code: 'http_502', index: null, field: null });
      assert.match(e.message, /Bad Gateway/);
      assert.equal(fake.seen.length, 1);
    },
  );
});

test('errors: a 2xx answer that is not JSON is a ChainlogError bad_response', async () => {
  await withFake(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    },
    async (fake) => {
      await rejectsWith(client(fake).checkpoint(), { status: 200, code: 'bad_response' });
    },
  );
});

test('get: 404 not_found is null; a 404 without the error body is an error', async () => {
  await withFake(
    (req, res) => {
      if (req.url === '/api/v1/events/7') reply(res, 404, errorBody('not_found', 'no event 7 this key may read'));
      else {
        res.writeHead(404);
        res.end('no such page');
      }
    },
    async (fake) => {
      assert.equal(await client(fake).get(7), null);
      await rejectsWith(client(fake, { baseUrl: fake.url + '/elsewhere' }).get(8), { status: 404, code: 'http_404' });
    },
  );
});

test('query: follows cursors through short and empty pages until null; times become parameters', async () => {
  const stored = (seq: number): StoredEvent => ({
    ...EVENT,
    seq,
    created_at: RECEIPT.created_at,
    hash: RECEIPT.hash,
    metadata: {},
    occurred_at: RECEIPT.created_at,
    backfilled: false,
  });
  const pages = [
    { data: [stored(0), stored(1)], cursor: 'c1' },
    { data: [], cursor: 'c2' },
    { data: [stored(5)], cursor: null },
  ];
  await withFake(
    (req, res) => {
      const cursor = new URL(req.url, 'http://x').searchParams.get('cursor');
      const page = pages[cursor === null ? 0 : Number(cursor.slice(1))];
      reply(res, 200, { data: page.data, pagination: { limit: 2, total: 3, next_cursor: page.cursor } });
    },
    async (fake) => {
      const filter = {
        tenant_id: 'acme',
        from: new Date(Date.UTC(2024, 0, 1)),
        to: 1_700_000_000_000,
        time: 'created' as const,
        limit: 2,
      };
      const seqs: number[] = [];
      for await (const e of client(fake).events(filter)) seqs.push(e.seq);
      assert.deepEqual(seqs, [0, 1, 5]);
      const query = 'tenant_id=acme&from=2024-01-01T00%3A00%3A00.000Z&to=1700000000000&time=created&limit=2';
      assert.deepEqual(
        fake.seen.map((s) => s.url),
        [`/api/v1/events?${query}`, `/api/v1/events?${query}&cursor=c1`, `/api/v1/events?${query}&cursor=c2`],
      );
      assert.equal(await client(fake).count({ tenant_id: 'acme', limit: 500 }), 3);
      assert.equal(fake.seen[3].url, '/api/v1/events?tenant_id=acme&limit=1');
    },
  );
});

test('trackBatch: one request, a generated key for each event without one, Dates as RFC 3339', async () => {
  await withFake(
    (req, res) => {
      const n = JSON.parse(req.body).events.length;
      reply(res, 200, { receipts: Array.from({ length: n }, (_, i) => ({ ...RECEIPT, seq: i })) });
    },
    async (fake) => {
      const at = new Date(Date.UTC(2025, 5, 1, 12, 30));
      const events = [{ ...EVENT, idempotency_key: 'migration_1' }, { ...EVENT, occurred_at: at }, EVENT];
      const receipts = await client(fake).trackBatch(events);
      assert.deepEqual(receipts.map((r) => r.seq), [0, 1, 2]);
      assert.equal(fake.seen.length, 1);
      const sent = JSON.parse(fake.seen[0].body).events;
      assert.equal(sent[0].idempotency_key, 'migration_1');
      assert.match(sent[1].idempotency_key, UUID);
      assert.match(sent[2].idempotency_key, UUID);
      assert.notEqual(sent[1].idempotency_key, sent[2].idempotency_key);
      assert.equal(sent[1].occurred_at, '2025-06-01T12:30:00.000Z');
      assert.equal('idempotency_key' in events[2], false, 'the caller\'s event is left as it was');
      assert.deepEqual(await client(fake).trackBatch([]), []);
      assert.equal(fake.seen.length, 1, 'an empty batch sends nothing');
    },
  );
});

// --- tail ---------------------------------------------------------------------------------

function sseEvent(seq: number, extra: Record<string, unknown> = {}): string {
  const e = { seq, created_at: RECEIPT.created_at, hash: RECEIPT.hash, ...EVENT, ...extra };
  return `id: ${seq}\nevent: event\ndata: ${JSON.stringify(e)}\n\n`;
}

function openStream(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(': open\n\n');
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects `n` events of a tail, then stops it; stops it after 5 s too, rather than hang. */
async function take(
  tail: (signal: AbortSignal) => AsyncIterable<StoredEvent>,
  n: number,
): Promise<StoredEvent[]> {
  const got: StoredEvent[] = [];
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 5000);
  try {
    for await (const e of tail(stop.signal)) {
      got.push(e);
      if (got.length === n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  assert.equal(got.length, n, `only ${got.length} of ${n} events in 5 s`);
  return got;
}

test('tail: chunks split mid-line and mid-character, comments, and a drop resumed with Last-Event-ID', async () => {
  await withFake(
    async (_req, res, n) => {
      openStream(res);
      if (n === 0) {
        const first = Buffer.from(sseEvent(0, { actor_name: 'Zoë' }));
        const cut = first.indexOf('ë') + 1; // inside the two bytes of ë, inside the data line
        res.write(first.subarray(0, cut));
        await pause(30);
        res.write(first.subarray(cut));
        await pause(30);
        res.write(sseEvent(1) + ': keep-alive\n\n');
        await pause(30);
        res.destroy(); // the connection drops
      } else {
        res.write(sseEvent(2) + sseEvent(3));
      }
    },
    async (fake) => {
      const got = await take((signal) => client(fake).tail({ from: 0, signal }), 4);
      assert.deepEqual(got.map((e) => e.seq), [0, 1, 2, 3]);
      assert.equal(got[0].actor_name, 'Zoë');
      assert.equal(fake.seen.length, 2);
      const [first, second] = fake.seen;
      assert.equal(first.url, '/api/v1/events/stream?from=0');
      assert.equal(first.headers['last-event-id'], undefined);
      assert.equal(first.headers.accept, 'text/event-stream');
      assert.equal(second.url, '/api/v1/events/stream');
      assert.equal(second.headers['last-event-id'], '1');
    },
  );
});

test('tail: an event the server sends again after a reconnect is not repeated', async () => {
  await withFake(
    (_req, res, n) => {
      openStream(res);
      if (n === 0) res.end(sseEvent(5) + sseEvent(6)); // a clean end: the server stopping
      else res.write(sseEvent(6) + sseEvent(7)); // a server that ignored Last-Event-ID
    },
    async (fake) => {
      const got = await take((signal) => client(fake).tail({ from: 5, signal }), 3);
      assert.deepEqual(got.map((e) => e.seq), [5, 6, 7]);
      assert.equal(fake.seen[1].headers['last-event-id'], '6');
    },
  );
});

test('tail: a stream that goes silent past stallMs is reopened', async () => {
  await withFake(
    (_req, res, n) => {
      openStream(res);
      res.write(sseEvent(n)); // then nothing, connection open
    },
    async (fake) => {
      const started = Date.now();
      const got = await take((signal) => client(fake).tail({ from: 0, stallMs: 200, signal }), 2);
      assert.deepEqual(got.map((e) => e.seq), [0, 1]);
      assert.ok(Date.now() - started >= 200);
      assert.equal(fake.seen[1].headers['last-event-id'], '0');
    },
  );
});

test('tail: without from, it starts after the newest event the key may read, following cursors', async () => {
  await withFake(
    (req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/api/v1/events') {
        const cursor = url.searchParams.get('cursor');
        const data = cursor === null ? [] : [{ seq: 41 }]; // an empty first page, then the newest
        reply(res, 200, { data, pagination: { limit: 1, total: 1, next_cursor: cursor === null ? 'c' : null } });
      } else {
        openStream(res);
        res.write(sseEvent(42));
      }
    },
    async (fake) => {
      const got = await take((signal) => client(fake).tail({ signal }), 1);
      assert.deepEqual(got.map((e) => e.seq), [42]);
      assert.deepEqual(
        fake.seen.map((s) => s.url),
        ['/api/v1/events?order=desc&limit=1', '/api/v1/events?order=desc&limit=1&cursor=c', '/api/v1/events/stream?from=42'],
      );
    },
  );
});

test('tail: an error message in the stream ends the tail with its ChainlogError, no reconnect', async () => {
  await withFake(
    (_req, res) => {
      openStream(res);
      res.write(sseEvent(0));
      res.write(`event: error\ndata: ${JSON.stringify(errorBody('unauthenticated', 'this key has been revoked'))}\n\n`);
    },
    async (fake) => {
      const seqs: number[] = [];
      const tailing = (async () => {
        for await (const e of client(fake).tail({ from: 0 })) seqs.push(e.seq);
      })();
      await rejectsWith(tailing, { status: 0, code: 'unauthenticated', message: 'this key has been revoked' });
      assert.deepEqual(seqs, [0]);
      assert.equal(fake.seen.length, 1);
    },
  );
});

test('tail: a refused stream (403) throws at once; aborting the signal ends the tail quietly', async () => {
  await withFake(
    (req, res) => {
      if (req.headers.authorization !== `Bearer ${KEY}`) return reply(res, 403, errorBody('forbidden', 'no read right'));
      openStream(res);
      res.write(sseEvent(0));
    },
    async (fake) => {
      const refused = (async () => {
        for await (const _ of client(fake, { apiKey: 'clk_other' }).tail({ from: 0 })) void _;
      })();
      await rejectsWith(refused, { status: 403, code: 'forbidden' });

      const stop = new AbortController();
      const seqs: number[] = [];
      for await (const e of client(fake).tail({ from: 0, signal: stop.signal })) {
        seqs.push(e.seq);
        setTimeout(() => stop.abort(), 20); // while the tail waits for more
      }
      assert.deepEqual(seqs, [0]);
    },
  );
});
