//! The processor: consume `billing.commands`, apply, commit, emit.
//!
//! - [`config`]: settings of the consumer group and batching.
//! - [`apply`]: turns one batch of raw messages into store mutations, events and DLQ
//!   records — all the domain work, no Kafka.
//! - [`run`]: the Kafka loop on its own thread: assignment from stored offsets, batching,
//!   producing events and DLQ records, committing, metrics.

pub mod apply;
pub mod config;
pub mod run;

pub use config::ProcessorConfig;
pub use run::{ProcessorDeps, ProcessorHandle, spawn};
