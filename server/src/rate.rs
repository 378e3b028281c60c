//! Per-key rate limits: a token bucket of `events_per_sec` refilled
//! continuously up to `burst`. One flooding key waits for its own bucket
//! and does not hold the log's queue for the others.
//!
//! A batch takes as many tokens as it has events. It is let through
//! whenever the bucket holds at least `min(events, burst)` tokens, even if
//! that leaves the bucket in debt, so that a batch larger than the burst is
//! slowed, never refused outright.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A key's bucket.
#[derive(Debug)]
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// A full bucket: `per_sec` events a second, `burst` at once (0 for
    /// one second's worth).
    pub fn new(per_sec: u64, burst: u64) -> RateLimit {
        let burst = if burst == 0 { per_sec } else { burst } as f64;
        RateLimit {
            per_sec: per_sec as f64,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Whether `other` has the same rate and burst.
    pub fn same_settings(&self, other: &RateLimit) -> bool {
        self.per_sec == other.per_sec && self.burst == other.burst
    }

    /// Takes `n` tokens, or says how long until they would be there.
    pub fn take(&self, n: usize) -> Result<(), Duration> {
        self.take_at(n, Instant::now())
    }

    fn take_at(&self, n: usize, now: Instant) -> Result<(), Duration> {
        let mut st = self.state.lock();
        let (tokens, last) = *st;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.per_sec)
            .min(self.burst);
        let need = (n as f64).min(self.burst);
        if tokens >= need {
            *st = (tokens - n as f64, now);
            Ok(())
        } else {
            *st = (tokens, now);
            Err(Duration::from_secs_f64((need - tokens) / self.per_sec))
        }
    }

    /// Gives back what [`take`](Self::take) took for a submission that did
    /// not happen.
    pub fn refund(&self, n: usize) {
        let mut st = self.state.lock();
        st.0 = (st.0 + n as f64).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate_up_to_its_burst() {
        let r = RateLimit::new(100, 10);
        let t0 = Instant::now();
        assert_eq!(r.take_at(10, t0), Ok(()));
        // Empty: one event needs 10 ms.
        assert_eq!(r.take_at(1, t0), Err(Duration::from_millis(10)));
        assert_eq!(r.take_at(1, t0 + Duration::from_millis(10)), Ok(()));
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(r.take_at(10, later), Ok(()));
        assert!(r.take_at(1, later).is_err());
        // A batch over the burst passes on a full bucket and leaves debt.
        let r = RateLimit::new(100, 10);
        assert_eq!(r.take_at(50, t0), Ok(()));
        assert_eq!(r.take_at(1, t0), Err(Duration::from_millis(410)));
        r.refund(50);
        assert_eq!(r.take_at(10, t0), Ok(()));
    }
}
