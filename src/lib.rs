//! The `billstream` binary's library: configuration, wiring and the demo.
//!
//! - [`config`]: defaults, TOML file, `BILLSTREAM__*` environment overrides, validation.
//! - [`broker`]: the embedded Kafka-protocol broker and topic creation on real clusters.
//! - [`pipeline`]: starts and stops broker, store, processor and gateway together.
//! - [`demo`]: the end-to-end demo workload and its reconciliation.

pub mod broker;
pub mod config;
pub mod demo;
pub mod pipeline;
