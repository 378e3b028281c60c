/**
 * The JSON the API takes and returns (`docs/http.md`), as TypeScript types. Field names are the
 * wire's, so an object here is what goes over the wire.
 */

/** A time: a Date, an RFC 3339 string (any offset, up to nanoseconds), or epoch milliseconds. */
export type Time = Date | string | number;

/** An event to append. `tenant_id` may be left out only with a key limited to one tenant. */
export interface AuditEvent {
  tenant_id?: string;
  actor_id: string;
  actor_name?: string;
  /** Checked against the log's schema (strict logs refuse unknown actions). */
  action: string;
  resource: string;
  resource_id?: string;
  /** Absent: the server's time of the append. */
  occurred_at?: Time;
  /** Dedup key, per tenant: a second append with it returns the first one's receipt. */
  idempotency_key?: string;
  /** The event's id in the system it came from; also deduplicated, per tenant. */
  source_event_id?: string;
  correlation_id?: string;
  /** Any JSON object; stored as its text. */
  metadata?: Record<string, unknown>;
  backfilled?: boolean;
}

/** What an append returns, once the `fdatasync` covering the event is done. */
export interface Receipt {
  seq: number;
  /** RFC 3339, nanoseconds, UTC: when the event was written. */
  created_at: string;
  /** The event's chain hash, 64 hex digits. */
  hash: string;
  /** True when the event was already stored (same idempotency key or source event id): the
   * receipt is the original's. */
  duplicate: boolean;
}

/** An event as the server stores and returns it: empty text fields are left out. */
export interface StoredEvent {
  seq: number;
  created_at: string;
  hash: string;
  tenant_id?: string;
  actor_id: string;
  actor_name?: string;
  action: string;
  resource: string;
  resource_id?: string;
  idempotency_key?: string;
  source_event_id?: string;
  correlation_id?: string;
  /** `{}` when the event had none. */
  metadata: Record<string, unknown>;
  /** RFC 3339, nanoseconds, UTC. */
  occurred_at: string;
  backfilled: boolean;
}

/** Query filters: exact matches, and a time range. */
export interface QueryFilter {
  tenant_id?: string;
  actor_id?: string;
  action?: string;
  resource?: string;
  resource_id?: string;
  /** Inclusive. */
  from?: Time;
  /** Exclusive. */
  to?: Time;
  /** Which time `from` and `to` apply to: `occurred` (the server's default) or `created`. */
  time?: 'occurred' | 'created';
  /** Events per page, 1 to 1,000 (server default 100). */
  limit?: number;
  /** `asc` (the server's default, oldest first) or `desc`. */
  order?: 'asc' | 'desc';
}

/** One page of a query. */
export interface Page {
  data: StoredEvent[];
  pagination: {
    limit: number;
    /** Every event the key may read that matches the filter, on every page. */
    total: number;
    /** Null on the last page. A page may be short and still have one. */
    next_cursor: string | null;
  };
}

/** The log's newest record: both null for an empty log. */
export interface Head {
  seq: number | null;
  hash: string | null;
}

export interface Stats {
  log: string;
  next_seq: number;
  head_hash: string;
  /** Null for an empty log. */
  head_created_at: string | null;
  appends: number;
  syncs: number;
  segments: number;
  unknown_actions: number;
}

/** A signed checkpoint (C2SP signed note) and the key that verifies it. */
export interface Checkpoint {
  note: string;
  verifier_key: string;
}
