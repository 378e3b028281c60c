//! Queries, reads by seq and tail steps: pages of events a key may read.
//!
//! The planner: a query scoped to tenants (every key's query is, unless
//! the key reads every tenant and the query names none) takes, for each
//! tenant, the postings of the terms its filters name (actor, action,
//! resource, resource and id, the exact keys; the tenant alone when it
//! names none), intersects them, and unites the tenants'; the time range
//! is applied through the engine's time index (`created_at`) or the index's
//! `occurred_at` column. Candidates are read from the records and matched
//! against the whole filter; a count is the candidates' number. A query
//! of every tenant scans the records of its range.

use std::ops::Range;

use engine::Record;
use proto::event::EventRef;
use proto::msg::{self, ErrorCode, ErrorReply, Query, TimeField};
use proto::wire;

use super::cursor::{make_cursor, parse_cursor, query_fingerprint};
use super::{engine_error, LogState};
use crate::auth::Key;
use crate::evindex::{self, term, Kind, SegmentIndex, Term};

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
        let matches = |rec: &Record, e: &EventRef<'_>| -> bool {
            (tenants.is_empty() || tenants.contains(&e.tenant_id))
                && (q.actor_id.is_empty() || e.actor_id == q.actor_id)
                && (q.action.is_empty() || e.action == q.action)
                && (q.resource.is_empty() || e.resource == q.resource)
                && (q.resource_id.is_empty() || e.resource_id == q.resource_id)
                && (q.idempotency_key.is_empty() || e.idempotency_key == q.idempotency_key)
                && (q.source_event_id.is_empty() || e.source_event_id == q.source_event_id)
                && (q.correlation_id.is_empty() || e.correlation_id == q.correlation_id)
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
        let occurred = (q.time_field == TimeField::OccurredAt).then_some(q.from..q.to);
        let (stop, total) = match plan(&tenants, q) {
            Some(plan) => {
                let stop = self.fill_planned(
                    &plan,
                    range,
                    occurred.as_ref(),
                    q.descending,
                    limit,
                    &mut page,
                    &matches,
                )?;
                let total = if q.want_total {
                    // Only a resource id without its type has no term: then
                    // each candidate is matched against the record.
                    let exact = q.resource_id.is_empty() || !q.resource.is_empty();
                    let check =
                        (!exact).then_some(&matches as &dyn Fn(&Record, &EventRef<'_>) -> bool);
                    Some(self.count_planned(&plan, base, occurred.as_ref(), check)?)
                } else {
                    None
                };
                (stop, total)
            }
            None => {
                let ranges = [range];
                let stop = if q.descending {
                    self.fill_newest_first(&ranges, limit, SCAN_BUDGET, &mut page, &matches)?
                } else {
                    self.fill(&ranges, limit, SCAN_BUDGET, &mut page, &matches)?
                };
                let total = if q.want_total {
                    let mut count = 0u64;
                    for rec in self.log.scan(base) {
                        let rec = rec.map_err(|e| engine_error(&e))?;
                        if let Ok(e) = EventRef::decode(&rec.payload) {
                            count += u64::from(matches(&rec, &e));
                        }
                    }
                    Some(count)
                } else {
                    None
                };
                (stop, total)
            }
        };
        let cursor = match stop {
            Stop::End => None,
            Stop::At(seq) => Some(make_cursor(seq, fingerprint)),
        };
        Ok(events_body(&page, cursor.as_ref().map(|c| &c[..]), total))
    }

    /// The candidates of `plan` in `range`, segment by segment in the
    /// order asked for (`descending`: newest first), each segment's
    /// ascending, passed to `each` until it returns false. Events not yet
    /// indexed (the indexer behind, or failing) come as a range to scan.
    fn for_each_segment(
        &self,
        plan: &[Vec<Term>],
        range: &Range<u64>,
        occurred: Option<&Range<u64>>,
        descending: bool,
        each: &mut dyn FnMut(Candidates) -> Result<bool, ErrorReply>,
    ) -> Result<(), ErrorReply> {
        // One consistent view: the sealed list ends where the active index
        // begins, and the active index is read only up to where it was.
        let (sealed, active_first, indexed) = self.events.snapshot();
        let mut steps: Vec<Step> = sealed
            .iter()
            .filter(|s| s.first_seq() < range.end && s.end_seq() > range.start)
            .map(|s| Step::Sealed(s.clone()))
            .collect();
        let active = range.start.max(active_first)..range.end.min(indexed);
        if active.start < active.end {
            steps.push(Step::Active(active_first, active));
        }
        if indexed < range.end {
            steps.push(Step::Unindexed(indexed.max(range.start)..range.end));
        }
        if descending {
            steps.reverse();
        }
        for step in steps {
            let c = match step {
                Step::Sealed(s) => Candidates::Seqs(candidates(&*s, plan, range, occurred)),
                Step::Active(first, r) => {
                    // Sealed since the view was taken: then its file has it.
                    let c = self.events.with_active(|b| {
                        (b.first_seq() == first).then(|| candidates(b, plan, &r, occurred))
                    });
                    Candidates::Seqs(match c {
                        Some(c) => c,
                        None => self
                            .events
                            .sealed()
                            .iter()
                            .find(|s| s.first_seq() == first)
                            .map_or_else(Vec::new, |s| candidates(&**s, plan, &r, occurred)),
                    })
                }
                Step::Unindexed(r) => Candidates::Scan(r),
            };
            if !each(c)? {
                break;
            }
        }
        Ok(())
    }

    /// Fills `page` with the planned candidates in `range` that `matches`
    /// accepts, in the order asked for.
    #[allow(clippy::too_many_arguments)]
    fn fill_planned(
        &self,
        plan: &[Vec<Term>],
        range: Range<u64>,
        occurred: Option<&Range<u64>>,
        descending: bool,
        limit: u16,
        page: &mut Page,
        matches: &dyn Fn(&Record, &EventRef<'_>) -> bool,
    ) -> Result<Stop, ErrorReply> {
        let mut scanned = 0u64;
        let mut stop = Stop::End;
        self.for_each_segment(plan, &range, occurred, descending, &mut |c| {
            match c {
                Candidates::Seqs(seqs) => {
                    let mut take = |seq: u64| -> Result<bool, ErrorReply> {
                        let rec = self.log.read(seq).map_err(|e| engine_error(&e))?;
                        Ok(matches!(
                            offer(&rec, &mut scanned, SCAN_BUDGET, limit, page, matches),
                            Offered::Scanned
                        ))
                    };
                    if descending {
                        for &seq in seqs.iter().rev() {
                            if !take(seq)? {
                                stop = Stop::At(seq + 1);
                                return Ok(false);
                            }
                        }
                    } else {
                        for &seq in &seqs {
                            if !take(seq)? {
                                stop = Stop::At(seq);
                                return Ok(false);
                            }
                        }
                    }
                }
                Candidates::Scan(r) => {
                    let ranges = [r];
                    let budget = SCAN_BUDGET.saturating_sub(scanned);
                    let s = if descending {
                        self.fill_newest_first(&ranges, limit, budget, page, matches)?
                    } else {
                        self.fill(&ranges, limit, budget, page, matches)?
                    };
                    if let Stop::At(seq) = s {
                        stop = Stop::At(seq);
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })?;
        Ok(stop)
    }

    /// How many events in `range` the plan selects: from the postings
    /// alone, or, when the plan does not cover the whole filter, the
    /// candidates that `check` accepts.
    fn count_planned(
        &self,
        plan: &[Vec<Term>],
        range: Range<u64>,
        occurred: Option<&Range<u64>>,
        check: Option<&Matcher<'_>>,
    ) -> Result<u64, ErrorReply> {
        let mut total = 0u64;
        self.for_each_segment(plan, &range, occurred, false, &mut |c| {
            match c {
                Candidates::Seqs(seqs) => match check {
                    None => total += seqs.len() as u64,
                    Some(check) => {
                        for seq in seqs {
                            let rec = self.log.read(seq).map_err(|e| engine_error(&e))?;
                            if let Ok(e) = EventRef::decode(&rec.payload) {
                                total += u64::from(check(&rec, &e));
                            }
                        }
                    }
                },
                Candidates::Scan(r) => {
                    // Events the indexer has not reached: indexed here, in
                    // a throwaway index, so that they count the same way.
                    let mut b = evindex::Builder::new(r.start);
                    for rec in self.log.scan(r.clone()) {
                        let rec = rec.map_err(|e| engine_error(&e))?;
                        b.add(
                            rec.seq,
                            rec.created_at,
                            EventRef::decode(&rec.payload).ok().as_ref(),
                        );
                    }
                    match check {
                        None => total += candidates(&b, plan, &r, occurred).len() as u64,
                        Some(check) => {
                            for seq in candidates(&b, plan, &r, occurred) {
                                let rec = self.log.read(seq).map_err(|e| engine_error(&e))?;
                                if let Ok(e) = EventRef::decode(&rec.payload) {
                                    total += u64::from(check(&rec, &e));
                                }
                            }
                        }
                    }
                }
            }
            Ok(true)
        })?;
        Ok(total)
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
        let mut page = Page {
            events: Vec::new(),
            count: 0,
        };
        let matches =
            |_: &Record, e: &EventRef<'_>| tenants.is_empty() || tenants.contains(&e.tenant_id);
        let stop = match plan(&tenants, &Query::all()) {
            Some(plan) => {
                self.fill_planned(&plan, range, None, false, limit, &mut page, &matches)?
            }
            None => self.fill(&[range], limit, SCAN_BUDGET, &mut page, &matches)?,
        };
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

/// Whether a record (and the event it holds) matches a filter.
type Matcher<'a> = dyn Fn(&Record, &EventRef<'_>) -> bool + 'a;

/// One segment's part of a planned query.
enum Step {
    Sealed(std::sync::Arc<evindex::SealedIndex>),
    /// The active index that began at this seq, over this range.
    Active(u64, Range<u64>),
    Unindexed(Range<u64>),
}

/// What a segment offers a planned query.
enum Candidates {
    /// These seqs, ascending.
    Seqs(Vec<u64>),
    /// Not indexed: every record of this range is to be looked at.
    Scan(Range<u64>),
}

/// For each tenant of the query's scope, the terms whose postings to
/// intersect; `None` when the scope is every tenant (nothing to look up).
fn plan(tenants: &[&str], q: &Query) -> Option<Vec<Vec<Term>>> {
    if tenants.is_empty() {
        return None;
    }
    let plan = tenants
        .iter()
        .map(|&t| {
            let mut terms = Vec::new();
            let mut add = |kind, v: &str, fields: &[&str]| {
                if !v.is_empty() {
                    terms.push(term(kind, fields));
                }
            };
            add(Kind::Actor, &q.actor_id, &[t, &q.actor_id]);
            add(Kind::Action, &q.action, &[t, &q.action]);
            if q.resource_id.is_empty() {
                add(Kind::Resource, &q.resource, &[t, &q.resource]);
            } else if !q.resource.is_empty() {
                add(
                    Kind::ResourceId,
                    &q.resource_id,
                    &[t, &q.resource, &q.resource_id],
                );
            }
            add(
                Kind::Idempotency,
                &q.idempotency_key,
                &[t, &q.idempotency_key],
            );
            add(
                Kind::SourceEvent,
                &q.source_event_id,
                &[t, &q.source_event_id],
            );
            add(
                Kind::Correlation,
                &q.correlation_id,
                &[t, &q.correlation_id],
            );
            // A resource id without its type has no term of its own: the
            // tenant's postings, and the match, do.
            if terms.is_empty() {
                terms.push(term(Kind::Tenant, &[t]));
            }
            terms
        })
        .collect();
    Some(plan)
}

/// The seqs of `seg` in `range` that `plan` selects, with `occurred_at`
/// in `occurred` if given, ascending.
fn candidates(
    seg: &dyn SegmentIndex,
    plan: &[Vec<Term>],
    range: &Range<u64>,
    occurred: Option<&Range<u64>>,
) -> Vec<u64> {
    let first = seg.first_seq();
    let lo = range.start.max(first) - first;
    let hi = range.end.min(seg.end_seq()).saturating_sub(first);
    if lo >= hi {
        return Vec::new();
    }
    let offs = evindex::union(
        plan.iter()
            .map(|terms| evindex::intersect(terms.iter().map(|t| seg.postings(t)).collect()))
            .collect(),
    );
    let from = offs.partition_point(|&o| u64::from(o) < lo);
    let to = offs.partition_point(|&o| u64::from(o) < hi);
    offs[from..to]
        .iter()
        .filter(|&&o| occurred.is_none_or(|r| r.contains(&seg.occurred(o))))
        .map(|&o| first + u64::from(o))
        .collect()
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
