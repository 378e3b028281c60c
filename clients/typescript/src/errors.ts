/**
 * The one error type the client throws for anything the server or the network did, and the
 * rules for which of them are worth retrying.
 */

/** The fields of a {@link ChainlogError}. */
export interface ChainlogErrorInit {
  status: number;
  code: string;
  message: string;
  index?: number | null;
  field?: string | null;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A failed request. `code` is the server's error code (`docs/http.md`, "Errors"), or one the
 * client made: `network` (no answer: refused, reset, timed out; `cause` holds the underlying
 * error), `http_<status>` (an error answer without the JSON error body, e.g. from a proxy), or
 * `bad_response` (a success answer the client could not read).
 */
export class ChainlogError extends Error {
  /** The HTTP status; 0 when no answer arrived, or the error came inside an event stream. */
  readonly status: number;
  readonly code: string;
  /** The event's position in a batch, for an event's error; otherwise null. */
  readonly index: number | null;
  /** The field at fault, for an event's error; otherwise null. */
  readonly field: string | null;
  /** How long the server asked the client to wait (`Retry-After`), when it said. */
  readonly retryAfterMs?: number;

  constructor(init: ChainlogErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ChainlogError';
    this.status = init.status;
    this.code = init.code;
    this.index = init.index ?? null;
    this.field = init.field ?? null;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
  }
}

/**
 * Whether sending the same request again may succeed. 429 and 503 are passing states, except a
 * poisoned log: it acknowledges nothing until the server restarts, so waiting would only delay
 * the error. Every request this client makes is safe to repeat (reads, and appends whose events
 * all carry idempotency keys), so a network failure is retried too.
 */
export function isRetryable(e: ChainlogError): boolean {
  if (e.code === 'network') return true;
  if (e.status === 429) return true;
  return e.status === 503 && e.code !== 'poisoned';
}

/** The error an answer with a non-2xx status stands for. */
export function errorFromResponse(status: number, headers: Headers, text: string): ChainlogError {
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
  const body = errorBody(text);
  if (body === undefined) {
    // Not chainlogd's error shape: a proxy's page, or a body cut short.
    return new ChainlogError({
      status,
      code: `http_${status}`,
      message: `HTTP ${status}: ${text.slice(0, 200).trim() || '(empty body)'}`,
      retryAfterMs,
    });
  }
  return new ChainlogError({ status, ...body, retryAfterMs });
}

/** The error inside a stream's `event: error` message, which arrives after a 200. */
export function errorFromStream(data: string): ChainlogError {
  const body = errorBody(data);
  if (body === undefined) {
    return new ChainlogError({ status: 0, code: 'bad_response', message: `stream error: ${data.slice(0, 200)}` });
  }
  return new ChainlogError({ status: 0, ...body });
}

/** `{"error": {"code", "message", "index", "field"}}`, or undefined for any other text. */
function errorBody(text: string): Pick<ChainlogErrorInit, 'code' | 'message' | 'index' | 'field'> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const e = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (typeof e !== 'object' || e === null || typeof e.code !== 'string') return undefined;
  return {
    code: e.code,
    message: typeof e.message === 'string' ? e.message : '',
    index: typeof e.index === 'number' ? e.index : null,
    field: typeof e.field === 'string' ? e.field : null,
  };
}

/** `Retry-After` as milliseconds: delay-seconds (what chainlogd sends) or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
