//! What the tests, the fuzz targets and the benches need from the engine
//! and production never does: the storage doubles ([`SimStorage`], power
//! loss at any operation; [`FaultyStorage`], failure of the nth one), the
//! fuzz bodies ([`fuzz`]) and the one seeded generator they all draw from
//! ([`Rng`]).
//!
//! Compiled only for the engine's own unit tests and with the engine's
//! `testing` feature. The engine's integration tests get the feature from
//! the engine's dev-dependency on itself, the other crates' tests and
//! benches from their dev-dependencies, and `fuzz/` from its dependency;
//! chainlogd and the tools depend on the engine without it, so none of
//! this is in their binaries.

pub mod fault;
pub mod fuzz;
mod rng;
pub mod sim;

pub use fault::{FaultPlan, FaultyStorage, Op};
pub use rng::Rng;
pub use sim::SimStorage;
