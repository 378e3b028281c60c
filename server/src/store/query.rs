//! Queries, reads by seq and tail steps: pages of events a key may read.

use std::ops::Range;

use engine::Record;
use proto::event::EventRef;
use proto::msg::{self, ErrorCode, ErrorReply, Query, TimeField};
use proto::wire;

use super::cursor::{make_cursor, parse_cursor, query_fingerprint};
use super::{engine_error, LogState};
use crate::auth::Key;
use crate::index::{Skip, TenantProbe};

/// Events scanned for one page before it is returned short, with a
/// cursor: bounds the time a page request holds a connection. (A query
/// that asks for its total makes one full pass over its range on top.)
pub const SCAN_BUDGET: u64 = 1 << 18;
/// Bytes of events in one page (the first event always fits).
pub const PAGE_BYTES: usize = 1 << 20;
/// Records read at once by a newest-first query: at most 64 events of at
/// most 1 MiB each held while they are taken backwards.
const NEWEST_FIRST_CHUNK: u64 = 64;

/// The tenants a key may read, and the tenant a query asked for, resolved.
fn read_scope<'k>(key: &'k Key, asked: &'k str) -> Result<Vec<&'k str>, ErrorReply> {
    if asked.is_empty() {
        return Ok(key.tenants.iter().map(String::as_str).collect());
    }
    if !key.allows_tenant(asked) {
        return Err(ErrorReply::new(
            ErrorCode::Forbidden,
            "this key may not read that tenant",
        ));
    }
    Ok(vec![asked])
}

/// A page being filled.
struct Page {
    events: Vec<u8>,
    count: u16,
}

/// Where a scan stopped.
enum Stop {
    /// Every range was scanned.
    End,
    /// Stopped with more to scan from this seq (a page filled up, or the
    /// scan budget ran out).
    At(u64),
}

/// What one scanned record did to a page being filled.
enum Offered {
    /// Scanned: taken, or not a match.
    Scanned,
    /// Not scanned: the budget ran out, or the page is full.
    Stopped,
}

/// Offers one scanned record to `page`: counted against the budget, and
/// taken if `matches` accepts it and the page has room (the first event
/// always fits).
fn offer(
    rec: &Record,
    scanned: &mut u64,
    budget: u64,
    limit: u16,
    page: &mut Page,
    matches: &dyn Fn(&Record, &EventRef<'_>) -> bool,
) -> Offered {
    if *scanned >= budget {
        return Offered::Stopped;
    }
    *scanned += 1;
    let Ok(e) = EventRef::decode(&rec.payload) else {
        return Offered::Scanned;
    };
    if !matches(rec, &e) {
        return Offered::Scanned;
    }
    let len = msg::stored_event_len(rec.payload.len());
    if page.count == limit || (page.count > 0 && page.events.len() + len > PAGE_BYTES) {
        return Offered::Stopped;
    }
    msg::put_stored_event(
        &mut page.events,
        rec.seq,
        rec.created_at,
        &rec.hash,
        &rec.payload,
    );
    page.count += 1;
    Offered::Scanned
}

impl LogState {
    /// Scans `ranges` for events `matches` accepts, filling `page` up to
    /// `limit` events and [`PAGE_BYTES`], within `budget` scanned records.
    /// A stop at seq `s` means: go on from `s`.
    fn fill(
        &self,
        ranges: &[Range<u64>],
        limit: u16,
        budget: u64,
        page: &mut Page,
        matches: &dyn Fn(&Record, &EventRef<'_>) -> bool,
    ) -> Result<Stop, ErrorReply> {
        let mut scanned = 0u64;
        for r in ranges {
            for rec in self.log.scan(r.clone()) {
                let rec = rec.map_err(|e| engine_error(&e))?;
                if let Offered::Stopped = offer(&rec, &mut scanned, budget, limit, page, matches) {
                    return Ok(Stop::At(rec.seq));
                }
            }
        }
        Ok(Stop::End)
    }

    /// [`fill`](Self::fill), newest first: each range is read forward in
    /// chunks of [`NEWEST_FIRST_CHUNK`] records from its end, and each chunk
    /// taken backwards. A stop at seq `s` means: go on below `s`.
    fn fill_newest_first(
        &self,
        ranges: &[Range<u64>],
        limit: u16,
        budget: u64,
        page: &mut Page,
        matches: &dyn Fn(&Record, &EventRef<'_>) -> bool,
    ) -> Result<Stop, ErrorReply> {
        let mut scanned = 0u64;
        for r in ranges.iter().rev() {
            let mut end = r.end;
            while end > r.start {
                let start = end.saturating_sub(NEWEST_FIRST_CHUNK).max(r.start);
                let chunk: Vec<Record> = self
                    .log
                    .scan(start..end)
                    .collect::<Result<_, _>>()
                    .map_err(|e| engine_error(&e))?;
                for rec in chunk.iter().rev() {
                    if let Offered::Stopped = offer(rec, &mut scanned, budget, limit, page, matches)
                    {
                        return Ok(Stop::At(rec.seq + 1));
                    }
                }
                end = start;
            }
        }
        Ok(Stop::End)
    }

    /// Runs a query for `key`; returns the EVENTS body.
    pub fn query(&self, key: &Key, q: &Query) -> Result<Vec<u8>, ErrorReply> {
        let limit = page_limit(q.limit)?;
        let tenants = read_scope(key, &q.tenant_id)?;
        if q.time_field != TimeField::None && q.from >= q.to {
            return Err(ErrorReply::new(
                ErrorCode::InvalidRequest,
                "the time range is empty (from >= to)",
            ));
        }
        self.refresh_index();
        let fingerprint = query_fingerprint(q, &tenants);
        let head = self.head_next();
        let mut range = 0..head;
        if q.time_field == TimeField::CreatedAt {
            let seek = |t: u64| self.log.seek_time(t).map_err(|e| engine_error(&e));
            range.start = seek(q.from)?.unwrap_or(head);
            if q.to != u64::MAX {
                range.end = seek(q.to)?.unwrap_or(head).min(head);
            }
        }
        let base = range.clone();
        if !q.cursor.is_empty() {
            let at = parse_cursor(&q.cursor, fingerprint)?;
            if q.descending {
                range.end = range.end.min(at);
            } else {
                range.start = range.start.max(at);
            }
        }
        let skip = Skip {
            tenants: tenants.iter().map(|t| TenantProbe::new(t)).collect(),
            occurred: (q.time_field == TimeField::OccurredAt).then_some(q.from..q.to),
        };
        let matches = |rec: &Record, e: &EventRef<'_>| -> bool {
            (tenants.is_empty() || tenants.contains(&e.tenant_id))
                && (q.actor_id.is_empty() || e.actor_id == q.actor_id)
                && (q.action.is_empty() || e.action == q.action)
                && (q.resource.is_empty() || e.resource == q.resource)
                && (q.resource_id.is_empty() || e.resource_id == q.resource_id)
                && match q.time_field {
                    TimeField::None => true,
                    TimeField::CreatedAt => (q.from..q.to).contains(&rec.created_at),
                    TimeField::OccurredAt => (q.from..q.to).contains(&e.occurred_at),
                }
        };
        let mut page = Page {
            events: Vec::new(),
            count: 0,
        };
        let ranges = self.index.candidates(range, &skip);
        let stop = if q.descending {
            self.fill_newest_first(&ranges, limit, SCAN_BUDGET, &mut page, &matches)?
        } else {
            self.fill(&ranges, limit, SCAN_BUDGET, &mut page, &matches)?
        };
        let total = if q.want_total {
            let mut count = 0u64;
            for r in self.index.candidates(base, &skip) {
                for rec in self.log.scan(r) {
                    let rec = rec.map_err(|e| engine_error(&e))?;
                    if let Ok(e) = EventRef::decode(&rec.payload) {
                        count += u64::from(matches(&rec, &e));
                    }
                }
            }
            Some(count)
        } else {
            None
        };
        let cursor = match stop {
            Stop::End => None,
            Stop::At(seq) => Some(make_cursor(seq, fingerprint)),
        };
        Ok(events_body(&page, cursor.as_ref().map(|c| &c[..]), total))
    }

    /// Events `from..to` that `key` may read, as an EVENTS body.
    pub fn read_range(
        &self,
        key: &Key,
        from: u64,
        to: u64,
        limit: u16,
    ) -> Result<Vec<u8>, ErrorReply> {
        let limit = page_limit(limit)?;
        let range = from..to.min(self.head_next());
        let (page, stop) = self.scoped_page(key, range, limit)?;
        let cursor = match stop {
            Stop::End => None,
            Stop::At(seq) => Some(seq.to_le_bytes()),
        };
        Ok(events_body(&page, cursor.as_ref().map(|c| &c[..]), None))
    }

    fn scoped_page(
        &self,
        key: &Key,
        range: Range<u64>,
        limit: u16,
    ) -> Result<(Page, Stop), ErrorReply> {
        self.refresh_index();
        let tenants: Vec<&str> = key.tenants.iter().map(String::as_str).collect();
        let skip = Skip {
            tenants: tenants.iter().map(|t| TenantProbe::new(t)).collect(),
            occurred: None,
        };
        let mut page = Page {
            events: Vec::new(),
            count: 0,
        };
        let ranges = self.index.candidates(range, &skip);
        let stop = self.fill(&ranges, limit, SCAN_BUDGET, &mut page, &|_, e| {
            tenants.is_empty() || tenants.contains(&e.tenant_id)
        })?;
        Ok((page, stop))
    }

    /// The next batch of a tail from `from`: a TAIL_EVENTS body (None when
    /// no event the key may read became durable) and the seq to continue
    /// from.
    pub fn tail_step(&self, key: &Key, from: u64) -> Result<(Option<Vec<u8>>, u64), ErrorReply> {
        let head = self.head_next();
        if from >= head {
            return Ok((None, from));
        }
        let (page, stop) = self.scoped_page(key, from..head, msg::MAX_PAGE)?;
        let next = match stop {
            Stop::End => head,
            Stop::At(seq) => seq,
        };
        if page.count == 0 {
            return Ok((None, next));
        }
        let mut body = Vec::with_capacity(2 + page.events.len());
        wire::put_u16(&mut body, page.count);
        body.extend_from_slice(&page.events);
        Ok((Some(body), next))
    }
}

fn page_limit(limit: u16) -> Result<u16, ErrorReply> {
    match limit {
        0 => Ok(msg::DEFAULT_PAGE),
        n if n <= msg::MAX_PAGE => Ok(n),
        n => Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("limit {n} is over the maximum of {}", msg::MAX_PAGE),
        )),
    }
}

fn events_body(page: &Page, cursor: Option<&[u8]>, total: Option<u64>) -> Vec<u8> {
    let mut body = Vec::with_capacity(page.events.len() + 32);
    wire::put_u16(&mut body, page.count);
    body.extend_from_slice(&page.events);
    msg::put_page_tail(&mut body, cursor, total);
    body
}
