//! Bounded queues between threads whose blocking calls park at once.
//!
//! The write path hands every append across threads several times: from
//! a connection to the writer, from the writer to the syncer, and back to
//! the connection with the receipts. crossbeam-channel's blocking receive
//! first spins, then calls `sched_yield` several times before it parks. On
//! a machine with two cores and dozens of threads each waiting for the
//! next `fdatasync`, that yielding was most of the server's CPU time at 16
//! clients x 1 event (the profile is in `docs/benchmarks.md`): every
//! yield is a context switch into another waiter that yields in turn.
//!
//! These queues are a `VecDeque` under a mutex with two condition
//! variables. A receiver with nothing to take sleeps on a futex at once,
//! and a sender wakes it only when it is actually asleep, so an
//! uncontended send is a lock, a push and an unlock. Many senders, one
//! receiver; the API is the subset of crossbeam-channel's that the
//! engine and server use.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver: bool,
    /// The receiver is asleep on `not_empty`.
    receiver_waiting: bool,
    /// Senders asleep on `not_full`.
    senders_waiting: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

impl<T> Shared<T> {
    /// A panic while the lock was held cannot leave the queue
    /// inconsistent (every change is one push or pop), so a poisoned lock
    /// is used as it is.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a queue holding at most `cap` items (at least one).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let cap = cap.max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            // A reply slot holds one item; longer queues grow as used.
            items: VecDeque::with_capacity(cap.min(16)),
            senders: 1,
            receiver: true,
            receiver_waiting: false,
            senders_waiting: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        cap,
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half. The queue is disconnected for it once every
/// sender is gone and the queue is empty.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// The receiver is gone; the item comes back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not queue the item, which comes back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `cap` items.
    Full(T),
    /// The receiver is gone.
    Disconnected(T),
}

/// Every sender is gone and nothing is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Nothing queued, and every sender is gone.
    Disconnected,
}

/// Why a receive with a time limit returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// The time ran out.
    Timeout,
    /// Nothing queued, and every sender is gone.
    Disconnected,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> Sender<T> {
    /// Queues `item`, sleeping while the queue is full.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let mut st = self.shared.lock();
        loop {
            if !st.receiver {
                return Err(SendError(item));
            }
            if st.items.len() < self.shared.cap {
                break;
            }
            st.senders_waiting += 1;
            st = self
                .shared
                .not_full
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
            st.senders_waiting -= 1;
        }
        self.push(st, item);
        Ok(())
    }

    /// Queues `item` if there is room now.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let st = self.shared.lock();
        if !st.receiver {
            return Err(TrySendError::Disconnected(item));
        }
        if st.items.len() >= self.shared.cap {
            return Err(TrySendError::Full(item));
        }
        self.push(st, item);
        Ok(())
    }

    fn push(&self, mut st: MutexGuard<'_, State<T>>, item: T) {
        st.items.push_back(item);
        let wake = st.receiver_waiting;
        drop(st);
        if wake {
            self.shared.not_empty.notify_one();
        }
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.senders -= 1;
        let wake = st.senders == 0 && st.receiver_waiting;
        drop(st);
        if wake {
            self.shared.not_empty.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the next item, sleeping until there is one.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// Takes the next item, sleeping at most `timeout` for one.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// Takes the next item, sleeping until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    /// Takes the next item if there is one now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let st = self.shared.lock();
        match self.pop(st) {
            Ok(item) => Ok(item),
            Err(st) if st.senders == 0 => Err(TryRecvError::Disconnected),
            Err(_) => Err(TryRecvError::Empty),
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut st = self.shared.lock();
        loop {
            st = match self.pop(st) {
                Ok(item) => return Ok(item),
                Err(st) => st,
            };
            if st.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            st.receiver_waiting = true;
            st = match deadline {
                None => self
                    .shared
                    .not_empty
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.receiver_waiting = false;
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.shared
                        .not_empty
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            st.receiver_waiting = false;
        }
    }

    /// Pops the front item, waking a sender waiting for room; without one,
    /// gives the guard back.
    fn pop<'a>(&'a self, mut st: MutexGuard<'a, State<T>>) -> Result<T, MutexGuard<'a, State<T>>> {
        match st.items.pop_front() {
            Some(item) => {
                let wake = st.senders_waiting > 0;
                drop(st);
                if wake {
                    self.shared.not_full.notify_one();
                }
                Ok(item)
            }
            None => Err(st),
        }
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items as they arrive, until every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receiver = false;
        let wake = st.senders_waiting > 0;
        // What is left is dropped here, outside no other lock.
        let left = std::mem::take(&mut st.items);
        drop(st);
        if wake {
            self.shared.not_full.notify_all();
        }
        drop(left);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// Blocking iterator over a [`Receiver`]; see [`Receiver::iter`].
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_across_threads() {
        let (tx, rx) = bounded(4);
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        tx.send((p, i)).expect("unexpected error");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u64; 3];
        let mut total = 0;
        for (p, i) in &rx {
            assert_eq!(i, next[p as usize], "producer {p} out of order");
            next[p as usize] += 1;
            total += 1;
        }
        for p in producers {
            p.join().expect("the thread panicked");
        }
        assert_eq!(total, 3000);
        assert_eq!(next, [1000, 1000, 1000]);
    }

    #[test]
    fn try_send_reports_full_and_disconnected() {
        let (tx, rx) = bounded(2);
        tx.try_send(1).expect("the receiver is alive");
        tx.try_send(2).expect("the receiver is alive");
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(tx.len(), 2);
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).expect("the receiver is alive");
        drop(rx);
        assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
        assert_eq!(tx.send(5), Err(SendError(5)));
    }

    #[test]
    fn receiver_sees_disconnect_only_after_the_queue_drains() {
        let (tx, rx) = bounded(2);
        tx.send(7).expect("the receiver is alive");
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(7));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(), Err(RecvError));
    }

    #[test]
    fn a_receiver_asleep_wakes_for_an_item_and_for_the_last_sender_leaving() {
        let (tx, rx) = bounded::<u32>(1);
        let t = std::thread::spawn(move || (rx.recv(), rx.recv()));
        std::thread::sleep(Duration::from_millis(20));
        tx.send(9).expect("the receiver is alive");
        std::thread::sleep(Duration::from_millis(20));
        drop(tx);
        assert_eq!(
            t.join().expect("the thread panicked"),
            (Ok(9), Err(RecvError))
        );
    }

    #[test]
    fn a_full_sender_sleeps_until_there_is_room_or_no_receiver() {
        let (tx, rx) = bounded(1);
        tx.send(1).expect("the receiver is alive");
        let t = {
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(2))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(t.join().expect("the thread panicked"), Ok(()));
        assert_eq!(rx.recv(), Ok(2));
        tx.send(3).expect("the receiver is alive");
        let t = {
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(4))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(t.join().expect("the thread panicked"), Err(SendError(4)));
    }

    #[test]
    fn timed_receives_time_out_with_nothing_queued() {
        let (tx, rx) = bounded::<u8>(1);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let started = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(1).expect("the receiver is alive");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        drop(tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
