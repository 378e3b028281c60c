//! A connection's replies, in request order, some still being made.
//!
//! The reader takes a place for every reply as it reads the request: a
//! reply it has at once (an error, a query page) fills its place right
//! away; an append's place is filled later, by the engine's callback once
//! the records are durable. The connection's writer sleeps until the
//! first place is filled and takes every filled place from the front at
//! once. So an append costs the writer one wake-up, by the thread that
//! made it durable, instead of one to learn of the append and another to
//! learn it is durable.
//!
//! At most `cap` places are taken at once; the reader (or a tail) waits
//! for room, which bounds what a client that stops reading can hold.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A place's number, counted from 0 by [`Outbox::reserve`] and
/// [`Outbox::push`] together.
pub(crate) type Ticket = u64;

pub(crate) struct Outbox<T> {
    state: Mutex<State<T>>,
    /// The writer waits here for the first place to be filled.
    filled: Condvar,
    /// Senders wait here for room.
    room: Condvar,
    cap: usize,
}

struct State<T> {
    /// `None` while a place waits to be filled.
    places: VecDeque<Option<T>>,
    /// The ticket of `places[0]`.
    first: Ticket,
    closed: bool,
    writer_waiting: bool,
    senders_waiting: usize,
}

impl<T> Outbox<T> {
    pub(crate) fn new(cap: usize) -> Outbox<T> {
        Outbox {
            state: Mutex::new(State {
                places: VecDeque::with_capacity(cap.min(64)),
                first: 0,
                closed: false,
                writer_waiting: false,
                senders_waiting: 0,
            }),
            filled: Condvar::new(),
            room: Condvar::new(),
            cap: cap.max(1),
        }
    }

    /// Every change is one push, fill or drain, so a panic elsewhere
    /// cannot leave the state half-made: a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the next place, filled with `item` when there is one,
    /// waiting while `cap` places are taken.
    fn take_place(&self, item: Option<T>) -> Ticket {
        let mut st = self.lock();
        while st.places.len() >= self.cap && !st.closed {
            st.senders_waiting += 1;
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
            st.senders_waiting -= 1;
        }
        let ticket = st.first + st.places.len() as u64;
        let wake = item.is_some() && st.places.is_empty() && st.writer_waiting;
        st.places.push_back(item);
        drop(st);
        if wake {
            self.filled.notify_one();
        }
        ticket
    }

    /// Queues a reply that is ready now.
    pub(crate) fn push(&self, item: T) {
        self.take_place(Some(item));
    }

    /// Takes a place for a reply that [`fill`](Outbox::fill) provides later.
    pub(crate) fn reserve(&self) -> Ticket {
        self.take_place(None)
    }

    /// Provides the reply for a reserved place; wakes the writer if it is
    /// the first.
    pub(crate) fn fill(&self, ticket: Ticket, item: T) {
        let mut st = self.lock();
        let at = usize::try_from(ticket - st.first).expect("a place within the outbox");
        debug_assert!(st.places[at].is_none(), "a place filled twice");
        st.places[at] = Some(item);
        let wake = at == 0 && st.writer_waiting;
        drop(st);
        if wake {
            self.filled.notify_one();
        }
    }

    /// No place is taken after this; the writer stops once the places
    /// taken are filled and drained.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let (writer, senders) = (st.writer_waiting, st.senders_waiting > 0);
        drop(st);
        if writer {
            self.filled.notify_one();
        }
        if senders {
            self.room.notify_all();
        }
    }

    /// Waits until the first place is filled, then moves every filled
    /// place from the front into `out`, in order. False once the outbox is
    /// closed and empty.
    pub(crate) fn drain_ready(&self, out: &mut Vec<T>) -> bool {
        let mut st = self.lock();
        loop {
            if matches!(st.places.front(), Some(Some(_))) {
                break;
            }
            if st.closed && st.places.is_empty() {
                return false;
            }
            st.writer_waiting = true;
            st = self.filled.wait(st).unwrap_or_else(|p| p.into_inner());
            st.writer_waiting = false;
        }
        while let Some(Some(_)) = st.places.front() {
            if let Some(Some(item)) = st.places.pop_front() {
                out.push(item);
            }
            st.first += 1;
        }
        let wake = st.senders_waiting > 0;
        drop(st);
        if wake {
            self.room.notify_all();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn replies_leave_in_request_order_whatever_order_they_are_filled_in() {
        let ob = Outbox::new(8);
        let a = ob.reserve();
        ob.push("frame-1");
        let b = ob.reserve();
        ob.push("frame-3");
        assert_eq!((a, b), (0, 2));
        ob.fill(b, "append-2");
        let ob = Arc::new(ob);
        let writer = {
            let ob = ob.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut drains = 0;
                while ob.drain_ready(&mut got) {
                    drains += 1;
                }
                (got, drains)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        ob.fill(a, "append-0");
        std::thread::sleep(Duration::from_millis(20));
        ob.close();
        let (got, drains) = writer.join().expect("the thread panicked");
        assert_eq!(got, ["append-0", "frame-1", "append-2", "frame-3"]);
        // Nothing was ready before `a` was filled; then all four at once.
        assert_eq!(drains, 1);
    }

    #[test]
    fn the_writer_waits_for_places_reserved_before_close() {
        let ob = Arc::new(Outbox::new(4));
        let t = ob.reserve();
        ob.close();
        let filler = {
            let ob = ob.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                ob.fill(t, 7u32);
            })
        };
        let mut got = Vec::new();
        assert!(ob.drain_ready(&mut got));
        assert_eq!(got, [7]);
        assert!(!ob.drain_ready(&mut got));
        filler.join().expect("the thread panicked");
    }

    #[test]
    fn a_sender_waits_for_room_until_the_writer_drains() {
        let ob = Arc::new(Outbox::new(2));
        ob.push(1u32);
        ob.push(2);
        let sender = {
            let ob = ob.clone();
            std::thread::spawn(move || ob.reserve())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !sender.is_finished(),
            "the third place was taken with no room"
        );
        let mut got = Vec::new();
        assert!(ob.drain_ready(&mut got));
        assert_eq!(got, [1, 2]);
        assert_eq!(sender.join().expect("the thread panicked"), 2);
    }
}
