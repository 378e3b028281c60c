/**
 * @chainlog/client: chainlogd's HTTP/JSON API (`docs/http.md` in the chainlog repository) from
 * TypeScript, with no runtime dependency (Node 18+, for the global fetch).
 *
 * Every request this client sends is safe to send twice: reads change nothing, and every
 * appended event carries an idempotency key (the caller's, or a random UUID made here), so a
 * retry after a lost answer gets the first append's receipt instead of storing the event again.
 * That is what lets the client retry appends on its own.
 */

import { randomUUID } from 'node:crypto';

import { ChainlogError, errorFromResponse, errorFromStream, isRetryable } from './errors.js';
import { SseParser } from './sse.js';
import type {
  AuditEvent,
  Checkpoint,
  Head,
  Page,
  QueryFilter,
  Receipt,
  Stats,
  StoredEvent,
  Time,
} from './types.js';

export { ChainlogError, isRetryable } from './errors.js';
export type { ChainlogErrorInit } from './errors.js';
export type {
  AuditEvent,
  Checkpoint,
  Head,
  Page,
  QueryFilter,
  Receipt,
  Stats,
  StoredEvent,
  Time,
} from './types.js';

export interface ClientOptions {
  /** The server's HTTP address, e.g. `http://127.0.0.1:7480`. */
  baseUrl: string;
  /** The API key (`clk_...`); it names the log, the rights and the tenants. */
  apiKey: string;
  /** How many times a failed request is sent again (429, 503 other than `poisoned`, network
   * failures); default 3, so at most 4 attempts. */
  retries?: number;
  /** The first retry's delay in ms, doubled for each next one, with jitter; default 100. */
  backoffMs?: number;
  /** How long one attempt may take, its answer's body included; default none. For a tail it
   * bounds only the wait for the stream to open. */
  timeoutMs?: number;
  /** The fetch to call; default the global one. */
  fetch?: typeof fetch;
}

export interface TrackOptions {
  /** The event's idempotency key, if the event does not carry one; default a random UUID. */
  idempotencyKey?: string;
}

export interface TailOptions {
  /** The first seq to yield; default the seq after the newest event this key may read, so only
   * new events. */
  from?: number;
  /** Aborting it ends the iteration (without an error) and closes the connection. */
  signal?: AbortSignal;
  /** A connection that sends nothing for this long counts as dropped and is reopened; default
   * 45,000 ms, three of the server's 15-second keep-alives. */
  stallMs?: number;
}

const API = '/api/v1';

/** The longest wait between two attempts, whatever the attempt count. */
const MAX_BACKOFF_MS = 30_000;

/** See {@link TailOptions.stallMs}. */
const DEFAULT_STALL_MS = 45_000;

/** One HTTP request, as every attempt of it sends it. */
interface Request {
  method: 'GET' | 'POST';
  /** From the API root, with its query string. */
  path: string;
  /** Serialised once, so that a retry sends the same bytes, and so the same idempotency keys. */
  body?: string;
  headers?: Record<string, string>;
  /** Return once the headers arrive, with the body unread (`Answer.stream`). */
  stream?: boolean;
  signal?: AbortSignal;
}

/** A 2xx answer: its text, or for a stream its unread body. */
interface Answer {
  status: number;
  text: string;
  stream: ReadableStream<Uint8Array> | null;
}

export class ChainlogClient {
  private readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    const { retries = 3, backoffMs = 100, timeoutMs } = options;
    if (!Number.isInteger(retries) || retries < 0) {
      throw new TypeError(`retries must be a non-negative integer, not ${retries}`);
    }
    if (!(backoffMs >= 0)) throw new TypeError(`backoffMs must be 0 or more, not ${backoffMs}`);
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      throw new TypeError(`timeoutMs must be more than 0, not ${timeoutMs}`);
    }
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no global fetch (Node 18+): pass options.fetch');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.retries = retries;
    this.backoffMs = backoffMs;
    this.timeoutMs = timeoutMs;
    // Called as a method of the client, the global fetch could see the wrong `this`.
    this.fetchImpl = f.bind(globalThis);
  }

  /**
   * Appends one event; resolves once it is durable (fdatasynced). An event without an
   * idempotency key gets `opts.idempotencyKey`, or else a random UUID, so a retry cannot store
   * it twice. A duplicate (that key or the source event id already stored) resolves with the
   * original's receipt and `duplicate: true`.
   */
  async track(event: AuditEvent, opts: TrackOptions = {}): Promise<Receipt> {
    const given = opts.idempotencyKey;
    if (given !== undefined && event.idempotency_key !== undefined && given !== event.idempotency_key) {
      throw new TypeError('opts.idempotencyKey differs from the event\'s idempotency_key');
    }
    const key = event.idempotency_key ?? given ?? randomUUID();
    const body = JSON.stringify(toWire(event, key));
    return this.json<Receipt>({ method: 'POST', path: `${API}/events`, body });
  }

  /**
   * Appends a batch, all or nothing (at most the server's `max_batch_events`, 1,000 by
   * default: a larger one is refused with 413, not split). Receipts come in the events' order.
   * Each event without an idempotency key gets a random UUID, as in {@link track}.
   */
  async trackBatch(events: AuditEvent[]): Promise<Receipt[]> {
    if (events.length === 0) return [];
    const wire = events.map((e) => toWire(e, e.idempotency_key ?? randomUUID()));
    const body = JSON.stringify({ events: wire });
    const answer = await this.json<{ receipts: Receipt[] }>({ method: 'POST', path: `${API}/events`, body });
    return answer.receipts;
  }

  /** The pages of a query, following `next_cursor` until it is null. A page may be short, or
   * even empty, and still have a next one. */
  async *query(filter: QueryFilter = {}): AsyncIterable<Page> {
    let cursor: string | null = null;
    do {
      const page: Page = await this.json<Page>({ method: 'GET', path: eventsPath(filter, cursor) });
      yield page;
      cursor = page.pagination.next_cursor ?? null;
    } while (cursor !== null);
  }

  /** The events of a query, page after page. */
  async *events(filter: QueryFilter = {}): AsyncIterable<StoredEvent> {
    for await (const page of this.query(filter)) yield* page.data;
  }

  /** How many events the key may read match the filter (exact): one request. */
  async count(filter: QueryFilter = {}): Promise<number> {
    const page = await this.json<Page>({ method: 'GET', path: eventsPath({ ...filter, limit: 1 }, null) });
    return page.pagination.total;
  }

  /** The event at `seq`, or null when there is none or the key may not read its tenant. */
  async get(seq: number): Promise<StoredEvent | null> {
    if (!Number.isSafeInteger(seq) || seq < 0) {
      throw new TypeError(`seq must be a non-negative integer, not ${seq}`);
    }
    try {
      return await this.json<StoredEvent>({ method: 'GET', path: `${API}/events/${seq}` });
    } catch (e) {
      if (e instanceof ChainlogError && e.status === 404 && e.code === 'not_found') return null;
      throw e;
    }
  }

  /** The log's newest record (admin, or read on every tenant). */
  head(): Promise<Head> {
    return this.json<Head>({ method: 'GET', path: `${API}/head` });
  }

  /** The log's counters (admin, or read on every tenant). */
  stats(): Promise<Stats> {
    return this.json<Stats>({ method: 'GET', path: `${API}/stats` });
  }

  /** A signed checkpoint of the log, and the key that verifies it. */
  checkpoint(): Promise<Checkpoint> {
    return this.json<Checkpoint>({ method: 'GET', path: `${API}/checkpoint` });
  }

  /**
   * Events as they become durable, from `opts.from` on, without end: a dropped or stalled
   * connection is reopened (after a short wait) with `Last-Event-ID` set to the last seq
   * yielded, so nothing is skipped or repeated. Opening a connection is retried like any
   * request; when that fails for good the iteration throws. Aborting `opts.signal` ends it.
   */
  async *tail(opts: TailOptions = {}): AsyncIterable<StoredEvent> {
    const { signal } = opts;
    const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    // The start is fixed here, as a seq, rather than left to the server's "the head" on each
    // connect: a stream dropped before its first event would otherwise resume at a later head,
    // skipping what was appended in between.
    const start = opts.from ?? (await this.nextSeq());
    let last: number | undefined;
    while (!signal?.aborted) {
      const conn = new AbortController();
      const unlink = forward(signal, conn);
      try {
        const answer = await this.send(streamRequest(start, last, conn.signal));
        for await (const event of streamEvents(answer.stream, stallMs, () => conn.abort())) {
          // A server that ignored Last-Event-ID must not make the caller see an event twice.
          if (last !== undefined && event.seq <= last) continue;
          last = event.seq;
          yield event;
        }
        // The stream ended: dropped, stalled, or the server stopping. Reconnect, and let the
        // retries of opening the next one decide whether the server is gone.
      } catch (e) {
        // Final: retries exhausted, a refusal, or an error the server sent in the stream.
        if (signal?.aborted) return;
        throw e;
      } finally {
        conn.abort(); // closes the connection when the caller stopped early
        unlink();
      }
      await sleep(this.backoff(0), signal);
    }
  }

  /** The seq after the newest event this key may read (0 if none): where "only new events"
   * begins. Follows cursors, since the first page of a filtered scan may be empty. */
  private async nextSeq(): Promise<number> {
    for await (const event of this.events({ order: 'desc', limit: 1 })) return event.seq + 1;
    return 0;
  }

  /** Sends the request, and its JSON answer parsed. */
  private async json<T>(req: Request): Promise<T> {
    const answer = await this.send(req);
    try {
      return JSON.parse(answer.text) as T;
    } catch (e) {
      throw new ChainlogError({
        status: answer.status,
        code: 'bad_response',
        message: `${req.method} ${req.path}: the answer is not JSON: ${answer.text.slice(0, 200)}`,
        cause: e,
      });
    }
  }

  /** Sends the request, again while it fails with a retryable error and retries remain. */
  private async send(req: Request): Promise<Answer> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(req);
      } catch (e) {
        if (!(e instanceof ChainlogError) || !isRetryable(e) || attempt >= this.retries) throw e;
        await sleep(this.backoff(attempt, e.retryAfterMs), req.signal);
      }
    }
  }

  /** One attempt: a 2xx answer, or a ChainlogError (or the abort reason of `req.signal`). */
  private async once(req: Request): Promise<Answer> {
    const ctl = new AbortController();
    const unlink = forward(req.signal, ctl);
    let timedOut = false;
    const timer =
      this.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            ctl.abort();
          }, this.timeoutMs);
    try {
      const res = await this.fetchImpl(this.baseUrl + req.path, {
        method: req.method,
        headers: this.headers(req),
        body: req.body,
        signal: ctl.signal,
      });
      if (req.stream && res.ok) return { status: res.status, text: '', stream: res.body };
      const text = await res.text();
      if (!res.ok) throw errorFromResponse(res.status, res.headers, text);
      return { status: res.status, text, stream: null };
    } catch (e) {
      if (e instanceof ChainlogError || req.signal?.aborted) throw e;
      const why = timedOut ? `no answer within ${this.timeoutMs} ms` : describe(e);
      throw new ChainlogError({ status: 0, code: 'network', message: `${req.method} ${req.path}: ${why}`, cause: e });
    } finally {
      clearTimeout(timer);
      // A stream's body is read after this returns, so its signal must stay linked; that signal
      // is the tail's own for this one connection, so the link goes with the connection.
      if (!req.stream) unlink();
    }
  }

  private headers(req: Request): Record<string, string> {
    const h: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: req.stream ? 'text/event-stream' : 'application/json',
      ...req.headers,
    };
    if (req.body !== undefined) h['content-type'] = 'application/json';
    return h;
  }

  /**
   * The wait before retry `attempt` (0 for the first): exponential from backoffMs, with jitter
   * so that clients refused together do not all come back together, and never sooner than the
   * server's Retry-After.
   */
  private backoff(attempt: number, retryAfterMs?: number): number {
    const ceiling = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** attempt);
    const jittered = ceiling / 2 + (Math.random() * ceiling) / 2;
    return Math.max(jittered, retryAfterMs ?? 0);
  }
}

/** The event as the API takes it, with its idempotency key and times as JSON values. */
function toWire(event: AuditEvent, idempotencyKey: string): Record<string, unknown> {
  const wire: Record<string, unknown> = { ...event, idempotency_key: idempotencyKey };
  if (event.occurred_at !== undefined) wire.occurred_at = timeValue(event.occurred_at);
  return wire;
}

/** A Date as RFC 3339 (UTC, milliseconds); strings and epoch milliseconds as given. */
function timeValue(t: Time): string | number {
  return t instanceof Date ? t.toISOString() : t;
}

/** GET /api/v1/events with the filter's parameters, and the cursor unless null. */
function eventsPath(filter: QueryFilter, cursor: string | null): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filter) as [string, unknown][]) {
    if (value === undefined || value === null) continue;
    params.set(name, String(name === 'from' || name === 'to' ? timeValue(value as Time) : value));
  }
  if (cursor !== null) params.set('cursor', cursor);
  const query = params.toString();
  return query === '' ? `${API}/events` : `${API}/events?${query}`;
}

/** The stream request: from `start`, or after `last` once an event was seen. */
function streamRequest(start: number, last: number | undefined, signal: AbortSignal): Request {
  if (last === undefined) {
    return { method: 'GET', path: `${API}/events/stream?from=${start}`, stream: true, signal };
  }
  return {
    method: 'GET',
    path: `${API}/events/stream`,
    headers: { 'last-event-id': String(last) },
    stream: true,
    signal,
  };
}

/**
 * The stored events of an event stream until it ends, cleanly or not: a failed read (the
 * connection dropped or was aborted) ends it too, and the caller decides what follows.
 * `onStall` is called when a read waits longer than `stallMs` (it should abort the
 * connection); the clock runs only while reading, so a slow caller is not taken for a dead
 * server. Throws a ChainlogError for an `event: error` message or an unreadable event.
 */
async function* streamEvents(
  body: ReadableStream<Uint8Array> | null,
  stallMs: number,
  onStall: () => void,
): AsyncGenerator<StoredEvent> {
  if (body === null) return;
  const reader = body.getReader();
  const decoder = new TextDecoder(); // `stream: true` keeps a UTF-8 sequence split over chunks
  const parser = new SseParser();
  try {
    for (;;) {
      const timer = setTimeout(onStall, stallMs);
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch {
        return;
      } finally {
        clearTimeout(timer);
      }
      if (chunk.done) return;
      for (const message of parser.push(decoder.decode(chunk.value, { stream: true }))) {
        if (message.event === 'error') throw errorFromStream(message.data);
        if (message.event === 'event') yield storedEvent(message.data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function storedEvent(data: string): StoredEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    parsed = undefined;
  }
  if (typeof (parsed as StoredEvent | undefined)?.seq !== 'number') {
    throw new ChainlogError({
      status: 0,
      code: 'bad_response',
      message: `a stream event that is not a stored event: ${data.slice(0, 200)}`,
    });
  }
  return parsed as StoredEvent;
}

/** Aborts `ctl` when `signal` aborts; returns the function that undoes the link. */
function forward(signal: AbortSignal | undefined, ctl: AbortController): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    ctl.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => ctl.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** Waits `ms`, or less when `signal` aborts (the caller checks it afterwards). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A fetch failure's message with its cause's (undici puts the errno in the cause). */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause instanceof Error ? `${e.message} (${e.cause.message})` : e.message;
}
