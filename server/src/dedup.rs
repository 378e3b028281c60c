//! The idempotency window: which idempotency keys and source event ids a
//! log has stored recently, and under which seq.
//!
//! The table lives in memory and is rebuilt on every start from the events
//! stored within the window (their `created_at`), so it survives restarts
//! and crashes exactly as the log does: an event counts once it is durable.
//! Keys are scoped by tenant and stored as 16-byte digests (about 100 bytes
//! a key with the map's and the expiry queue's overhead).
//!
//! A key being appended and not yet durable is *pending*: another append
//! with the same key waits for it to resolve (stored: a duplicate; failed:
//! free again) rather than racing it into the log twice.

use std::collections::hash_map::Entry;
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
    /// Stored keys in `created_at` order, for expiry.
    order: VecDeque<(u64, Key)>,
    /// Claims waiting for another append's pending key now (lets a test
    /// see that a claim really waits).
    waiting: usize,
}

/// What a claimed key turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen within the window: now pending, for this append.
    New,
    /// Stored within the window, as this seq.
    Duplicate(u64),
}

/// How long an append waits for another's pending key before `busy`.
pub const PENDING_WAIT: Duration = Duration::from_secs(30);

/// The window of one log.
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
    /// An empty table remembering keys for `window`.
    pub fn new(window: Duration) -> Dedup {
        Dedup {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            inner: Mutex::new(Inner::default()),
            resolved: Condvar::new(),
        }
    }

    /// Records a stored key (rebuilding at start).
    pub fn insert_stored(&self, k: Key, seq: u64, created_at: u64, now: u64) {
        if created_at.saturating_add(self.window_ns) < now {
            return;
        }
        let mut inner = self.inner.lock();
        if let Entry::Vacant(v) = inner.map.entry(k) {
            v.insert(Slot::Stored { seq, created_at });
            inner.order.push_back((created_at, k));
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
        self.expire(&mut inner, now);
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
                Some(Slot::Stored { seq, created_at })
                    if created_at.saturating_add(self.window_ns) >= now =>
                {
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
                inner.order.push_back((created_at, k));
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

    fn expire(&self, inner: &mut Inner, now: u64) {
        let horizon = now.saturating_sub(self.window_ns);
        while let Some(&(created_at, k)) = inner.order.front() {
            if created_at >= horizon {
                break;
            }
            inner.order.pop_front();
            if matches!(inner.map.get(&k), Some(Slot::Stored { created_at: c, .. }) if *c == created_at)
            {
                inner.map.remove(&k);
            }
        }
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
    fn keys_are_remembered_for_the_window_only() {
        let d = Dedup::new(Duration::from_secs(10));
        let a = key(KeyKind::Idempotency, "t1", "a");
        assert_ne!(a, key(KeyKind::Idempotency, "t2", "a"), "scoped by tenant");
        assert_ne!(a, key(KeyKind::SourceEvent, "t1", "a"), "scoped by field");
        assert_eq!(d.claim(&[a], 100 * S), Ok(vec![Claim::New]));
        d.resolve(a, Some((7, 100 * S)));
        assert_eq!(d.claim(&[a], 105 * S), Ok(vec![Claim::Duplicate(7)]));
        assert_eq!(d.claim(&[a], 111 * S), Ok(vec![Claim::New]));
        d.resolve(a, None);
        assert!(d.is_empty());
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
        let d = std::sync::Arc::new(Dedup::new(Duration::from_secs(10)));
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
