//! A connection's replies, in request order, some still being made.
//!
//! The connection takes a place for every request as it reads it: a reply
//! it has at once (an error, a pong) fills its place right away; an
//! append's place is filled by the engine's callback once the records are
//! durable, a query's by the blocking thread that ran it. The connection's
//! task is woken when the first place is filled and writes every filled
//! place from the front with one write. Tails push their frames at the
//! back, waiting for room.
//!
//! At most `cap` places are taken by requests: the connection stops reading
//! requests while the outbox is full, which bounds what a client that stops
//! reading can hold (TCP backpressure does the rest). A tail's push waits
//! for room too; only a tail's last frame (its DONE or error) may go over,
//! so that ending a tail never waits on the client.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// A place's number, counted from 0 by [`Outbox::reserve`] and the pushes
/// together.
pub(crate) type Ticket = u64;

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The connection's task waits here for the first place to be filled.
    filled: Notify,
    /// Tails wait here for room.
    room: Notify,
    cap: usize,
}

#[derive(Debug)]
struct State {
    /// `None` while a place waits to be filled.
    places: VecDeque<Option<Vec<u8>>>,
    /// The ticket of `places[0]`.
    first: Ticket,
    /// Places taken and not yet filled.
    unfilled: usize,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                places: VecDeque::with_capacity(cap.min(64)),
                first: 0,
                unfilled: 0,
                closed: false,
            }),
            filled: Notify::new(),
            room: Notify::new(),
            cap: cap.max(1),
        }
    }

    /// Whether a request may take a place now.
    pub(crate) fn has_room(&self) -> bool {
        self.state.lock().places.len() < self.cap
    }

    /// Places taken, filled or not.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().places.len()
    }

    /// Places taken and not yet filled (replies being made).
    pub(crate) fn unfilled(&self) -> usize {
        self.state.lock().unfilled
    }

    /// Takes the next place, to be [filled](Self::fill) later. The caller
    /// checked [`has_room`](Self::has_room); the bound is the reader's.
    pub(crate) fn reserve(&self) -> Ticket {
        let mut st = self.state.lock();
        let ticket = st.first + st.places.len() as u64;
        st.places.push_back(None);
        st.unfilled += 1;
        ticket
    }

    /// Takes the next place, filled with `frame`.
    pub(crate) fn push_now(&self, frame: Vec<u8>) {
        let wake = {
            let mut st = self.state.lock();
            st.places.push_back(Some(frame));
            st.places.len() == 1
        };
        if wake {
            self.filled.notify_one();
        }
    }

    /// Fills a reserved place (from any thread).
    pub(crate) fn fill(&self, ticket: Ticket, frame: Vec<u8>) {
        let wake = {
            let mut st = self.state.lock();
            let i = ticket.checked_sub(st.first).map(|i| i as usize);
            let place = i.and_then(|i| st.places.get_mut(i));
            match place {
                Some(p @ None) => {
                    *p = Some(frame);
                    st.unfilled -= 1;
                    i == Some(0)
                }
                // A ticket is filled once, and only a filled place leaves
                // the front: anything else is a bug in the caller.
                _ => panic!("outbox ticket {ticket} filled twice or never reserved"),
            }
        };
        if wake {
            self.filled.notify_one();
        }
    }

    /// Pushes a tail's frame at the back, waiting while the outbox is full.
    /// False if the outbox closed (the frame is dropped).
    pub(crate) async fn push(&self, frame: Vec<u8>) -> bool {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = self.state.lock();
                if st.closed {
                    return false;
                }
                if st.places.len() < self.cap {
                    st.places.push_back(Some(frame));
                    let wake = st.places.len() == 1;
                    drop(st);
                    if wake {
                        self.filled.notify_one();
                    }
                    return true;
                }
            }
            room.await;
        }
    }

    /// Waits until the first place may have been filled (or anything else
    /// worth a look changed). Spurious wake-ups are possible.
    pub(crate) async fn wait_filled(&self) {
        self.filled.notified().await;
    }

    /// Moves every filled place from the front into `out`, back to back:
    /// what can be written now, in order. Returns how many frames.
    pub(crate) fn take_ready(&self, out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        {
            let mut st = self.state.lock();
            while let Some(Some(_)) = st.places.front() {
                if let Some(Some(frame)) = st.places.pop_front() {
                    out.extend_from_slice(&frame);
                }
                st.first += 1;
                n += 1;
            }
        }
        if n > 0 {
            self.room.notify_waiters();
        }
        n
    }

    /// Refuses further tail pushes and wakes the tails that wait for room.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.room.notify_waiters();
        self.filled.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(o: &Outbox) -> (usize, Vec<u8>) {
        let mut out = Vec::new();
        let n = o.take_ready(&mut out);
        (n, out)
    }

    #[test]
    fn replies_leave_in_request_order_whatever_the_fill_order() {
        let o = Outbox::new(8);
        let a = o.reserve();
        let b = o.reserve();
        o.push_now(b"c".to_vec());
        o.fill(b, b"b".to_vec());
        assert_eq!(
            frames(&o),
            (0, Vec::new()),
            "nothing before the first place fills"
        );
        assert_eq!(o.unfilled(), 1);
        o.fill(a, b"a".to_vec());
        assert_eq!(frames(&o), (3, b"abc".to_vec()));
        assert_eq!((o.len(), o.unfilled()), (0, 0));
    }

    #[test]
    fn room_is_counted_over_filled_and_unfilled_places() {
        let o = Outbox::new(2);
        let a = o.reserve();
        assert!(o.has_room());
        o.push_now(b"x".to_vec());
        assert!(!o.has_room());
        o.fill(a, b"y".to_vec());
        assert_eq!(frames(&o), (2, b"yx".to_vec()));
        assert!(o.has_room());
    }

    #[test]
    fn a_tail_push_waits_for_room_and_ends_on_close() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let o = std::sync::Arc::new(Outbox::new(1));
            o.push_now(b"1".to_vec());
            let o2 = o.clone();
            let pusher = tokio::spawn(async move { o2.push(b"2".to_vec()).await });
            tokio::task::yield_now().await;
            assert!(!pusher.is_finished(), "the push waits while full");
            assert_eq!(frames(&o), (1, b"1".to_vec()));
            assert!(pusher.await.expect("join"), "room made: pushed");
            assert_eq!(frames(&o), (1, b"2".to_vec()));
            o.push_now(b"3".to_vec());
            let o3 = o.clone();
            let blocked = tokio::spawn(async move { o3.push(b"4".to_vec()).await });
            tokio::task::yield_now().await;
            o.close();
            assert!(!blocked.await.expect("join"), "closed: dropped");
        });
    }

    #[test]
    #[should_panic(expected = "filled twice")]
    fn a_ticket_filled_twice_is_a_bug() {
        let o = Outbox::new(2);
        let a = o.reserve();
        o.fill(a, Vec::new());
        o.fill(a, Vec::new());
    }
}
