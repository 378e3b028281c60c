//! Query cursors: opaque, bound to the query they came from.

use proto::msg::{ErrorCode, ErrorReply, Query, TimeField};
use sha2::{Digest, Sha256};

const CURSOR_VERSION: u8 = 1;

/// A query cursor: version, the seq to continue from (ascending: the next
/// seq to look at; descending: the seq below which to go on), and a
/// fingerprint of the query, so that a cursor cannot be replayed against
/// another query.
pub(super) fn make_cursor(seq: u64, fingerprint: u64) -> [u8; 17] {
    let mut c = [0u8; 17];
    c[0] = CURSOR_VERSION;
    c[1..9].copy_from_slice(&seq.to_le_bytes());
    c[9..].copy_from_slice(&fingerprint.to_le_bytes());
    c
}

pub(super) fn parse_cursor(c: &[u8], fingerprint: u64) -> Result<u64, ErrorReply> {
    let bad = |why: &str| {
        Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            format!("bad cursor: {why}"),
        ))
    };
    if c.len() != 17 || c[0] != CURSOR_VERSION {
        return bad("not a cursor this server issued");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&c[1..9]);
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&c[9..]);
    if u64::from_le_bytes(fp) != fingerprint {
        return bad("it belongs to a different query");
    }
    Ok(u64::from_le_bytes(seq))
}

pub(super) fn query_fingerprint(q: &Query, tenants: &[&str]) -> u64 {
    // SHA-256 over length-prefixed fields: the same on every build, so a
    // cursor stays valid across a server upgrade.
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for s in [&q.actor_id, &q.action, &q.resource, &q.resource_id] {
        text(s);
    }
    for t in tenants {
        text(t);
    }
    h.update([q.time_field as u8]);
    // The bounds only where they apply: ignored values cannot void a cursor.
    if q.time_field != TimeField::None {
        h.update(q.from.to_le_bytes());
        h.update(q.to.to_le_bytes());
    }
    h.update((tenants.len() as u64).to_le_bytes());
    // Newest first reads the other way: its cursors are its own. (Only
    // then, so that the cursors of ascending queries did not change.)
    if q.descending {
        h.update(b"desc");
    }
    // The key filters likewise, only when set.
    if q.has_keys() {
        h.update(b"keys");
        for s in [&q.idempotency_key, &q.source_event_id, &q.correlation_id] {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}
