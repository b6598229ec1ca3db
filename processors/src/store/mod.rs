//! The hot store: one narrow async trait, shaped like ScyllaDB tables.
//!
//! Tables (the embedded engine mirrors each as a keyspace):
//! - `invoices` partitioned by (tenant, year, bucket), clustered by invoice id;
//!   `invoice_locator` (tenant, invoice id) → (year, bucket) makes a lookup by id a point read;
//!   `invoices_by_status` (tenant, status) → invoice keys, for listing.
//! - `open_by_due` (tenant, due date, invoice) → balance: drives overdue and, later, dunning.
//! - `tenant_totals` (tenant, bucket, currency) and `tenant_month_paid` (tenant, month,
//!   bucket, currency): one writer per bucket, summed at query time.
//! - `commands` (tenant, command id) → outcome: de-duplication and `GET /v1/commands/{id}`.
//! - `audit` (tenant, day, issued_at, command): one row per command, what happened, in order.
//! - `offsets` (cluster, topic, partition) → next offset, written in the same batch as the
//!   state it covers.
//! - `tenants` and `api_keys` (sha-256 of the key → tenant).
//!
//! Writes arrive as one `Vec<Mutation>` per processed batch; a backend applies it atomically
//! (embedded) or fenced by offset (ScyllaDB, later).

pub mod conformance;
mod fjall;
mod keys;
mod tagged;

pub use self::fjall::{DEFAULT_CACHE_MB, EngineStats, FjallConfig, FjallStore, TableStats};

use crate::domain::{Invoice, InvoiceStatus};
use crate::StoreError;
use billstream_schemas::{Currency, Date};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A tenant: who owns invoices, how many Kafka keys it is split across.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Generated id.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Number of partition keys (1 = the tenant id alone).
    pub buckets: u32,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandState {
    /// Applied; its events were published.
    Applied,
    /// Broke a domain rule; nothing changed.
    Rejected {
        /// Stable reason code.
        code: String,
        /// Explanation.
        message: String,
    },
}

/// The stored outcome of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandStatus {
    /// e.g. `record_payment` (borrowed when written: one allocation less per command).
    pub command_type: Cow<'static, str>,
    /// The invoice it named.
    pub invoice_id: String,
    /// Outcome.
    pub state: CommandState,
    /// The command's issued_at.
    pub issued_at_ms: i64,
    /// Kafka partition it was read from.
    pub partition: i32,
    /// Kafka offset it was read from.
    pub offset: i64,
}

/// Key of a per-bucket, per-currency totals row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TotalsKey {
    /// Tenant.
    pub tenant_id: String,
    /// Bucket (0 for an unsplit tenant).
    pub bucket: u32,
    /// Currency.
    pub currency: Currency,
}

/// Running totals for one (tenant, bucket, currency).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of balances due of open invoices.
    #[serde(with = "crate::stored_decimal")]
    pub outstanding: Decimal,
    /// Invoice counts by status: draft, open, paid, void.
    pub counts: [u64; 4],
}

/// Key of a per-month paid row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonthKey {
    /// Tenant.
    pub tenant_id: String,
    /// Month as yyyymm.
    pub year_month: u32,
    /// Bucket.
    pub bucket: u32,
    /// Currency.
    pub currency: Currency,
}

/// An open invoice by due date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenItem {
    /// Tenant.
    pub tenant_id: String,
    /// Due date.
    pub due_date: Date,
    /// Invoice.
    pub invoice_id: String,
    /// Its currency.
    pub currency: Currency,
    /// Its balance due.
    #[serde(with = "crate::stored_decimal")]
    pub balance_due: Decimal,
}

/// One command's line in the audit log: what it did (or why it was refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Tenant.
    pub tenant_id: String,
    /// Day of the command's issued_at.
    pub day: Date,
    /// The command's issued_at (Unix ms): the log's order within a day.
    pub issued_at_ms: i64,
    /// The command.
    pub command_id: String,
    /// Invoice concerned.
    pub invoice_id: String,
    /// What happened, in order: the events it emitted, or its rejection.
    pub events: Vec<AuditEvent>,
}

/// One event of an [`AuditEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Event type or `command_rejected` (borrowed when written).
    pub kind: Cow<'static, str>,
    /// Short human-readable detail.
    pub detail: String,
}

/// One change in an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Insert or replace an invoice (and its locator and status index entry).
    PutInvoice {
        /// New state (shared with the processor's overlay of uncommitted batches).
        invoice: Arc<Invoice>,
        /// Its bucket.
        bucket: u32,
        /// Its status before this batch, to move the status index entry.
        previous_status: Option<InvoiceStatus>,
    },
    /// Insert or replace an open-by-due row.
    PutOpenItem(OpenItem),
    /// Remove an open-by-due row.
    RemoveOpenItem {
        /// Tenant.
        tenant_id: String,
        /// Due date.
        due_date: Date,
        /// Invoice.
        invoice_id: String,
    },
    /// Replace a totals row.
    PutTotals(TotalsKey, Totals),
    /// Replace a month-paid row.
    PutMonthPaid(MonthKey, Decimal),
    /// Record a command's outcome.
    PutCommand {
        /// Tenant.
        tenant_id: String,
        /// Command.
        command_id: String,
        /// Outcome.
        status: CommandStatus,
    },
    /// Append a command's audit line.
    Audit(AuditEntry),
    /// The next offset to read for a partition.
    SetOffset {
        /// Kafka cluster id (offsets of another cluster mean nothing here).
        cluster_id: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Next offset to consume.
        next_offset: i64,
    },
}

/// One page of invoices.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoicePage {
    /// Invoices in key order.
    pub invoices: Vec<Invoice>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The hot store. Reads are point lookups or bounded range scans within one tenant.
#[async_trait::async_trait]
pub trait HotStore: Send + Sync + std::fmt::Debug {
    /// Applies all mutations atomically (all or none visible, durable when it returns).
    async fn apply(&self, batch: &[Mutation]) -> Result<(), StoreError>;

    /// One invoice by id.
    async fn get_invoice(&self, tenant_id: &str, invoice_id: &str) -> Result<Option<Invoice>, StoreError>;
    /// The outcome of one command.
    async fn get_command(&self, tenant_id: &str, command_id: &str) -> Result<Option<CommandStatus>, StoreError>;
    /// One totals row.
    async fn get_totals(&self, key: &TotalsKey) -> Result<Option<Totals>, StoreError>;
    /// One month-paid row.
    async fn get_month_paid(&self, key: &MonthKey) -> Result<Option<Decimal>, StoreError>;
    /// Next offsets of every partition of `topic` stored for `cluster_id`.
    async fn partition_offsets(&self, cluster_id: &str, topic: &str) -> Result<BTreeMap<i32, i64>, StoreError>;

    /// Creates a tenant with its first API key (as a sha-256 hash). A hash already in use is
    /// a `Conflict`.
    async fn put_tenant(&self, tenant: &Tenant, api_key_hash: [u8; 32]) -> Result<(), StoreError>;
    /// A tenant by id.
    async fn get_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError>;
    /// The tenant an API key (hash) belongs to.
    async fn tenant_for_key(&self, api_key_hash: [u8; 32]) -> Result<Option<Tenant>, StoreError>;

    /// A page of a tenant's invoices, optionally of one status.
    async fn list_invoices(
        &self,
        tenant_id: &str,
        status: Option<InvoiceStatus>,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<InvoicePage, StoreError>;
    /// Every totals row of a tenant (all buckets and currencies).
    async fn tenant_totals(&self, tenant_id: &str) -> Result<Vec<(TotalsKey, Totals)>, StoreError>;
    /// Every month-paid row of a tenant for one month.
    async fn month_paid(&self, tenant_id: &str, year_month: u32) -> Result<Vec<(MonthKey, Decimal)>, StoreError>;
    /// Open invoices due strictly before `before`, oldest first.
    async fn open_items_due_before(&self, tenant_id: &str, before: Date) -> Result<Vec<OpenItem>, StoreError>;
    /// The audit log of one tenant and day, in issue order (ties by command id).
    async fn audit(&self, tenant_id: &str, day: Date) -> Result<Vec<AuditEntry>, StoreError>;
}
