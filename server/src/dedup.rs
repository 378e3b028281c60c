//! Idempotency keys and source event ids in flight and just stored, and
//! under which seq.
//!
//! The table in memory holds a key from its claim until the event index
//! has the event it was stored with (the indexer follows the log within
//! about 50 ms); from then on the key is found through the index (see
//! `store::append`), at any age. So the table holds only the keys of
//! appends in flight and of the last moments' events: about 100 bytes a
//! key, never more than the keys of the events not yet indexed. Keys are
//! scoped by tenant and stored as 16-byte digests.
//!
//! A window (`dedup_window_secs`, unlimited by default) limits how old a
//! stored key may be and still make a duplicate, wherever it is found.
//!
//! A key being appended and not yet durable is *pending*: another append
//! with the same key waits for it to resolve (stored: a duplicate; failed:
//! free again) rather than racing it into the log twice.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sha2::{Digest, Sha256};

/// A tenant-scoped key digest.
pub type Key = [u8; 16];

/// Which field a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `idempotency_key`.
    Idempotency = 1,
    /// `source_event_id`.
    SourceEvent = 2,
}

/// The digest of one key.
pub fn key(kind: KeyKind, tenant: &str, value: &str) -> Key {
    let mut h = Sha256::new();
    h.update([kind as u8]);
    h.update((tenant.len() as u64).to_le_bytes());
    h.update(tenant.as_bytes());
    h.update(value.as_bytes());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Stored { seq: u64, created_at: u64 },
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Slot>,
    /// Stored keys in about seq order, to let go once indexed.
    order: VecDeque<(u64, Key)>,
    /// Claims waiting for another append's pending key now (lets a test
    /// see that a claim really waits).
    waiting: usize,
}

/// What a claimed key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not in the table: now pending, for this append (the caller looks
    /// for it in the index).
    New,
    /// Stored (within the window), as this seq.
    Duplicate(u64),
}

/// How long an append waits for another's pending key before `busy`.
pub const PENDING_WAIT: Duration = Duration::from_secs(30);

/// The table of one log.
#[derive(Debug)]
pub struct Dedup {
    window_ns: u64,
    inner: Mutex<Inner>,
    resolved: Condvar,
}

/// The wait for another append's pending key timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTimeout;

impl Dedup {
    /// An empty table for keys stored at most `window` ago (`None`: of
    /// any age).
    pub fn new(window: Option<Duration>) -> Dedup {
        Dedup {
            window_ns: window.map_or(u64::MAX, |w| {
                u64::try_from(w.as_nanos()).unwrap_or(u64::MAX)
            }),
            inner: Mutex::new(Inner::default()),
            resolved: Condvar::new(),
        }
    }

    /// Whether a key stored at `created_at` still makes a duplicate `now`.
    pub fn within_window(&self, created_at: u64, now: u64) -> bool {
        created_at.saturating_add(self.window_ns) >= now
    }

    /// Lets go of the stored keys of events below `seq`: the index has
    /// them.
    pub fn forget_below(&self, seq: u64) {
        let mut inner = self.inner.lock();
        while let Some(&(s, k)) = inner.order.front() {
            if s >= seq {
                break;
            }
            inner.order.pop_front();
            if matches!(inner.map.get(&k), Some(Slot::Stored { seq: stored, .. }) if *stored == s) {
                inner.map.remove(&k);
            }
        }
    }

    /// Claims `keys` for one append, all at once: for each, whether it was
    /// stored within the window (and as which seq) or is now pending for
    /// this append. Waits while any of them is pending for another append,
    /// at most 30 s.
    pub fn claim(&self, keys: &[Key], now: u64) -> Result<Vec<Claim>, PendingTimeout> {
        self.claim_within(keys, now, PENDING_WAIT)
    }

    /// [`claim`](Self::claim), waiting at most `wait` for pending keys
    /// (`Duration::ZERO`: not at all, for a caller on the event loop, which
    /// must not block; it retries with a wait on a blocking thread).
    pub fn claim_within(
        &self,
        keys: &[Key],
        now: u64,
        wait: Duration,
    ) -> Result<Vec<Claim>, PendingTimeout> {
        let deadline = Instant::now() + wait;
        let mut inner = self.inner.lock();
        loop {
            if !keys
                .iter()
                .any(|k| inner.map.get(k) == Some(&Slot::Pending))
            {
                break;
            }
            inner.waiting += 1;
            let timed_out = self.resolved.wait_until(&mut inner, deadline).timed_out();
            inner.waiting -= 1;
            if timed_out {
                return Err(PendingTimeout);
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let claim = match inner.map.get(k) {
                Some(Slot::Stored { seq, created_at }) if self.within_window(*created_at, now) => {
                    Claim::Duplicate(*seq)
                }
                // A key claimed twice in one call is pending after the first.
                Some(Slot::Pending) => Claim::New,
                _ => {
                    inner.map.insert(*k, Slot::Pending);
                    Claim::New
                }
            };
            out.push(claim);
        }
        Ok(out)
    }

    /// Settles a pending key: stored as `seq`, or (on `None`) released.
    pub fn resolve(&self, k: Key, stored: Option<(u64, u64)>) {
        let mut inner = self.inner.lock();
        match stored {
            Some((seq, created_at)) => {
                inner.map.insert(k, Slot::Stored { seq, created_at });
                inner.order.push_back((seq, k));
            }
            None => {
                if inner.map.get(&k) == Some(&Slot::Pending) {
                    inner.map.remove(&k);
                }
            }
        }
        drop(inner);
        self.resolved.notify_all();
    }

    /// Keys remembered (stored or pending).
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn keys_make_duplicates_within_the_window_only() {
        let d = Dedup::new(Some(Duration::from_secs(10)));
        let a = key(KeyKind::Idempotency, "t1", "a");
        assert_ne!(a, key(KeyKind::Idempotency, "t2", "a"), "scoped by tenant");
        assert_ne!(a, key(KeyKind::SourceEvent, "t1", "a"), "scoped by field");
        assert_eq!(d.claim(&[a], 100 * S), Ok(vec![Claim::New]));
        d.resolve(a, Some((7, 100 * S)));
        assert_eq!(d.claim(&[a], 105 * S), Ok(vec![Claim::Duplicate(7)]));
        assert_eq!(d.claim(&[a], 111 * S), Ok(vec![Claim::New]));
        d.resolve(a, None);
        assert!(d.is_empty());
        assert!(d.within_window(100 * S, 110 * S));
        assert!(!d.within_window(100 * S, 111 * S));
        assert!(Dedup::new(None).within_window(0, u64::MAX));
    }

    #[test]
    fn stored_keys_are_let_go_once_indexed_and_pending_ones_never() {
        let d = Dedup::new(None);
        let [a, b, c] = ["a", "b", "c"].map(|v| key(KeyKind::Idempotency, "t", v));
        assert_eq!(d.claim(&[a, b, c], S), Ok(vec![Claim::New; 3]));
        d.resolve(a, Some((4, S)));
        d.resolve(b, Some((5, S)));
        d.forget_below(5);
        assert_eq!(d.len(), 2, "b stored as 5 and c pending stay");
        assert_eq!(
            d.claim_within(&[b], S, Duration::ZERO),
            Ok(vec![Claim::Duplicate(5)])
        );
        assert_eq!(
            d.claim_within(&[a], S, Duration::ZERO),
            Ok(vec![Claim::New])
        );
        d.forget_below(100);
        assert_eq!(d.len(), 2, "a and c pending");
        assert_eq!(d.claim_within(&[c], S, Duration::ZERO), Err(PendingTimeout));
    }

    /// Claims `a` on another thread while it is pending; returns once that
    /// claim is waiting (it reports on the channel when it returns).
    fn blocked_claim(
        d: &std::sync::Arc<Dedup>,
        a: Key,
    ) -> (
        std::thread::JoinHandle<()>,
        std::sync::mpsc::Receiver<Result<Vec<Claim>, PendingTimeout>>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = d.clone();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(d2.claim(&[a], S));
        });
        // Bounded only against a hang: a claim that never waits fails here.
        let until = Instant::now() + Duration::from_secs(10);
        while d.inner.lock().waiting == 0 {
            assert!(Instant::now() < until, "the second claim never waited");
            assert!(rx.try_recv().is_err(), "the second claim returned at once");
            std::thread::yield_now();
        }
        (waiter, rx)
    }

    #[test]
    fn a_pending_key_makes_the_second_claim_wait() {
        let d = std::sync::Arc::new(Dedup::new(Some(Duration::from_secs(10))));
        let a = key(KeyKind::Idempotency, "t", "a");
        assert_eq!(d.claim(&[a], S), Ok(vec![Claim::New]));
        // A claim that may not wait is refused while the key is pending.
        assert_eq!(d.claim_within(&[a], S, Duration::ZERO), Err(PendingTimeout));
        // Stored: the waiting claim, still blocked until then, gets the
        // duplicate.
        let (waiter, rx) = blocked_claim(&d, a);
        assert!(rx.try_recv().is_err(), "returned before the key resolved");
        d.resolve(a, Some((3, S)));
        waiter.join().expect("joins");
        assert_eq!(rx.recv(), Ok(Ok(vec![Claim::Duplicate(3)])));
        assert_eq!(d.inner.lock().waiting, 0);
        // Released: the waiting claim gets the key, pending for it.
        let b = key(KeyKind::Idempotency, "t", "b");
        assert_eq!(d.claim(&[b], S), Ok(vec![Claim::New]));
        let (waiter, rx) = blocked_claim(&d, b);
        assert!(rx.try_recv().is_err(), "returned before the key resolved");
        d.resolve(b, None);
        waiter.join().expect("joins");
        assert_eq!(rx.recv(), Ok(Ok(vec![Claim::New])));
        assert_eq!(d.inner.lock().map.get(&b), Some(&Slot::Pending));
    }
}
