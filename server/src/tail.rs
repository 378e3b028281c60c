//! Tail subscriptions: a task each on the event loop, at most
//! [`MAX_TAILS`] per connection. A tail follows the durable head (woken by
//! the log's head signal), reads each step on the blocking pool (a step
//! reads at most one page from the disk), and pushes its frames into the
//! connection's outbox, waiting for room, so that a client that stops
//! reading stops its tails too.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::msg::{kind, Response};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::Key;
use crate::ctx::Ctx;
use crate::outbox::Outbox;
use crate::reply;
use crate::store::LogState;

/// Tails one connection may run at once; one more is refused with `busy`.
/// Each holds a task and at most one page in flight.
pub const MAX_TAILS: usize = 16;

/// How often a tail that sees no new events checks that its key is still
/// in force.
const RECHECK: Duration = Duration::from_millis(200);

/// The connection's side of a running tail.
#[derive(Debug)]
pub(crate) struct TailHandle {
    ctl: Arc<Control>,
    task: JoinHandle<()>,
}

/// What the connection and the tail share. One lock, so that a cancel
/// either reaches a running tail (which answers it) or finds it finished
/// (and the connection answers it): never neither.
#[derive(Debug, Default)]
struct Control {
    state: Mutex<ControlState>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct ControlState {
    /// `Some(None)`: end (a new AUTH); `Some(Some(id))`: end and answer the
    /// CANCEL request `id` with DONE.
    cancel: Option<Option<u32>>,
    finished: bool,
}

impl TailHandle {
    /// Asks the tail to end, answering the CANCEL request `cancel_id` (if
    /// any) after its own DONE. False if it had already ended, in which
    /// case the caller answers the CANCEL itself.
    pub(crate) fn cancel(&self, cancel_id: Option<u32>) -> bool {
        let mut st = self.ctl.state.lock();
        if st.finished {
            return false;
        }
        st.cancel = Some(cancel_id);
        drop(st);
        self.ctl.wake.notify_one();
        true
    }

    /// Whether the tail has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the tail to end.
    pub(crate) async fn join(self) {
        let _ = self.task.await;
    }
}

/// A tail to start.
pub(crate) struct Tail {
    /// The TAIL request's id: its frames carry it.
    pub id: u32,
    /// The first seq, or `u64::MAX` for the head.
    pub from: u64,
    pub key: Key,
    pub state: Arc<LogState>,
    pub out: Arc<Outbox>,
    pub ctx: Arc<Ctx>,
    /// The key store's generation when the key was last found in force.
    pub generation: u64,
}

impl Tail {
    /// Starts the tail's task.
    pub(crate) fn spawn(self) -> TailHandle {
        let ctl = Arc::new(Control::default());
        let task = tokio::spawn(self.run(ctl.clone()));
        TailHandle { ctl, task }
    }

    async fn run(self, ctl: Arc<Control>) {
        let last = self.follow(&ctl).await;
        // Under the control lock: a cancel that arrives from now on finds
        // the tail finished and is answered by the connection.
        let cancel = {
            let mut st = ctl.state.lock();
            st.finished = true;
            st.cancel.take()
        };
        let out = &self.out;
        match (last, cancel) {
            (End::Cancelled, Some(cancel_id)) | (End::Gone, Some(cancel_id)) => {
                out.push_now(reply::frame(self.id, &Response::Done));
                if let Some(c) = cancel_id {
                    out.push_now(reply::frame(c, &Response::Done));
                }
            }
            (End::Cancelled, None) => out.push_now(reply::frame(self.id, &Response::Done)),
            (End::Error(frame), cancel) => {
                out.push_now(frame);
                if let Some(Some(c)) = cancel {
                    out.push_now(reply::frame(c, &Response::Done));
                }
            }
            (End::Gone, None) => {}
        }
    }

    /// Follows the log until cancelled, the connection or server goes, or
    /// an error ends the tail.
    async fn follow(&self, ctl: &Control) -> End {
        let s = &self.state;
        let key = Arc::new(self.key.clone());
        let mut head = s.signal.subscribe();
        let mut stop = self.ctx.stop_signal();
        let mut generation = self.generation;
        let mut next = if self.from == u64::MAX {
            s.log.head().map_or(0, |h| h.seq + 1)
        } else {
            self.from
        };
        loop {
            if ctl.state.lock().cancel.is_some() {
                return End::Cancelled;
            }
            if self.ctx.stopping() {
                return End::Gone;
            }
            // A tail runs with the key that started it, while it is in force.
            let now = self.ctx.keys.generation();
            if now != generation {
                if self.ctx.keys.current(&key).is_none() {
                    let e = crate::route::revoked();
                    return End::Error(reply::error_frame(&self.ctx.metrics, self.id, e));
                }
                generation = now;
            }
            head.borrow_and_update();
            let (state, k) = (s.clone(), key.clone());
            let step = tokio::task::spawn_blocking(move || state.tail_step(&k, next)).await;
            let (body, n) = match step {
                Ok(Ok(step)) => step,
                Ok(Err(e)) => return End::Error(reply::error_frame(&self.ctx.metrics, self.id, e)),
                Err(_) => return End::Gone,
            };
            let moved = n > next;
            next = n;
            if let Some(body) = body {
                let frame = reply::body_frame(kind::TAIL_EVENTS, self.id, &body);
                tokio::select! {
                    pushed = self.out.push(frame) => if !pushed { return End::Gone },
                    () = ctl.wake.notified() => return End::Cancelled,
                }
            }
            if !moved {
                tokio::select! {
                    _ = head.changed() => {}
                    () = ctl.wake.notified() => {}
                    () = crate::ctx::stopped(&mut stop) => {}
                    () = tokio::time::sleep(RECHECK) => {}
                }
            }
        }
    }
}

/// How a tail ended.
enum End {
    /// Asked to (CANCEL or a new AUTH): it answers DONE.
    Cancelled,
    /// The connection or the server went: nothing to answer.
    Gone,
    /// This error frame ends it.
    Error(Vec<u8>),
}
