//! The stateful heart of billstream: commands in, invoice state and events out.
//!
//! - [`domain`]: the invoice aggregate — a pure function of (state, command) with no clock,
//!   the rounding rule, rejection codes, derived ids.
//! - [`store`]: the [`store::HotStore`] trait (narrow, Scylla-shaped), its record types, the
//!   embedded fjall backend and the conformance suite every backend passes.
//! - [`consumer`]: the Kafka consumer loop — batches per partition, applies in order, writes
//!   state and offsets atomically, emits events, sends poison messages to the DLQ.
//! - [`publish`]: publishes a batch of records and waits for all their acknowledgements.
//! - [`outcome`]: lets a waiter (the gateway's `?wait=applied`) learn when a command is done.
//! - [`metrics`]: every Prometheus metric the processors export, in one place.
//! - [`error`]: the crate's error type.

pub mod consumer;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod outcome;
pub mod publish;
pub mod store;
pub mod stored_decimal;

pub use error::StoreError;
pub use store::HotStore;
