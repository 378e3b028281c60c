//! Changing a log's action schema while appends run: swap, then recount.

use std::sync::Arc;

use parking_lot::MutexGuard;

use super::LogState;
use crate::schema::{Schema, Tally};

/// A schema change in progress: the schema is in force, the counts are
/// not yet recomputed. See [`LogState::begin_schema_change`]; dropping it
/// recounts too.
#[derive(Debug)]
#[must_use = "the counts are the previous schema's until recount() runs"]
pub struct SchemaChange<'a> {
    state: &'a LogState,
    _one_change: MutexGuard<'a, ()>,
    /// Events before this seq were counted under the previous schema.
    upto: u64,
    /// The catch-up before the swap, and the counts of the events before
    /// `upto` under the new schema; `None` once recounted.
    caught_up: Option<(Result<(), engine::Error>, Tally)>,
}

impl SchemaChange<'_> {
    /// Replaces the counts with those of the events before the change,
    /// under the new schema (summed from the event indexes' action tables
    /// when the change began), and those the indexer counted since.
    ///
    /// An error is the catch-up's before the swap: the counts then cover
    /// the events indexed, until the next start counts everything again.
    pub fn recount(mut self) -> Result<(), engine::Error> {
        self.run()
    }

    /// Events before this seq are recounted; later ones are counted by
    /// the indexer.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    fn run(&mut self) -> Result<(), engine::Error> {
        let Some((result, tally)) = self.caught_up.take() else {
            return Ok(());
        };
        self.state.unknown.finish_recount(tally);
        result
    }
}

impl Drop for SchemaChange<'_> {
    fn drop(&mut self) {
        // The counts must not stay split between two schemas.
        if let Err(e) = self.run() {
            tracing::warn!(log = %self.state.config.name, error = %e, "recounting unknown actions failed");
        }
    }
}

impl LogState {
    /// Replaces the action schema: appends validated from now on use it,
    /// and the unknown-action counts are recomputed under it before this
    /// returns. [`begin_schema_change`](Self::begin_schema_change), then
    /// [`SchemaChange::recount`].
    pub fn set_schema(&self, schema: Schema) -> Result<(), engine::Error> {
        self.begin_schema_change(schema).recount()
    }

    /// Puts `schema` in force; the counts follow once the returned change
    /// is [recounted](SchemaChange::recount) (until then, the previous
    /// schema's counts are reported). Changes are serialised: the next one
    /// begins once this one is dropped.
    ///
    /// Under the catch-up lock (the indexer's), so that every event is
    /// counted either before the swap (and recounted) or after it (and
    /// kept): index every durable event, so that the recount covers every
    /// event acknowledged before this call; swap the schema; start counting
    /// newly indexed events apart; note how far the index has got.
    pub fn begin_schema_change(&self, schema: Schema) -> SchemaChange<'_> {
        let one_change = self.recount.lock();
        let schema = Arc::new(schema);
        let held = self.catch_up.lock();
        let caught_up = self.catch_up_locked(&held, false);
        *self.schema.write() = (schema.clone(), true);
        self.unknown.begin_recount();
        let tally = self.events.unknown_under(&schema);
        SchemaChange {
            state: self,
            _one_change: one_change,
            upto: self.events.indexed(),
            caught_up: Some((caught_up, tally)),
        }
    }
}
