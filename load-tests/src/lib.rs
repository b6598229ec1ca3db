//! The load-test harness: workload generator, drivers and the JSON benchmark report.
//!
//! Not built yet: this crate is a reserved place in the workspace layout. Until it exists,
//! `billstream demo --invoices N` is the only end-to-end throughput figure.
