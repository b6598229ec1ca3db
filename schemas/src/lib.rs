//! The messages billstream speaks, shared by every other crate.
//!
//! - [`date`]: calendar dates as Avro's `date` (days since 1970-01-01), no time zone games.
//! - [`money`]: ISO 4217 currencies, minor units and the one rounding rule for line amounts.
//! - [`command`]: the command envelope producers publish to `billing.commands`.
//! - [`event`]: the event envelope processors publish to `billing.events`.
//! - [`codec`]: Avro values of both envelopes (the generic path, with schema resolution)
//!   and the Confluent wire framing.
//! - [`binary`]: the direct Avro encoder and decoder of this release's schemas (the hot path).
//! - [`catalog`]: which schema id means which schema: the embedded catalog, or a
//!   Confluent-compatible registry through `schema_registry_converter`.
//! - [`compat`]: the BACKWARD-compatibility check over every published schema version.
//! - [`topics`]: topic names and partition keys.

pub mod binary;
pub mod catalog;
pub mod codec;
pub mod command;
pub mod compat;
pub mod date;
pub mod error;
pub mod event;
pub mod money;
pub mod topics;

pub use catalog::SchemaCatalog;
pub use command::{CommandEnvelope, CommandHead, CommandPayload, CreateInvoice, LineItem, RecordPayment};
pub use date::Date;
pub use error::SchemaError;
pub use event::{Event, EventEnvelope, EventHead};
pub use money::Currency;
