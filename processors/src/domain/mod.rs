//! The invoice aggregate: a pure function of (state, command), no wall clock inside.
//!
//! [`decide`] takes the invoice as stored (or `None`) and one command, and returns either the
//! new state with the events it produces, or a rejection with a stable reason code. Every id
//! it makes is derived from the command id, so replays and client retries produce identical
//! output. [`ids`] holds those derivations. [`plan`] is the same decision without the copy:
//! the [`Change`] to apply in place, which is what the processor uses.

pub mod ids;
mod invoice;

pub use invoice::{Change, Decision, Invoice, InvoiceLine, InvoiceStatus, Payment, Rejection, decide, plan};
