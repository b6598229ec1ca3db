//! The load-test harness: drives a billstream pipeline and measures it from the outside.
//!
//! - [`workload`]: the seeded workload (skewed tenants, lifecycles, retries, invalid input).
//! - [`target`]: the pipeline under test — started here (`billstream up` as a child process
//!   against a broker the harness owns) or given by address; CPU and memory from /proc.
//! - [`drive`]: HTTP batch, HTTP single-command and direct Kafka drivers at a target rate.
//! - [`observe`]: the events topic (what was resolved, when) and `/metrics`.
//! - [`scenario`]: `steady`, `max`, `query`, `raw`, and the loss check.
//! - [`report`]: the table and the JSON report.

pub mod drive;
pub mod observe;
pub mod report;
pub mod scenario;
pub mod target;
pub mod workload;
