//! The command envelope (`billing.commands`, schema `billing.commands-value`).

use crate::{Currency, Date};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// One command, as published to `billing.commands`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandEnvelope {
    /// Unique id; a retry reuses it, which makes the retry a no-op.
    pub command_id: String,
    /// The tenant the command acts for.
    pub tenant_id: String,
    /// Caller-supplied id tying logs, events and headers together.
    pub correlation_id: Option<String>,
    /// When the command was accepted, Unix milliseconds: the processors' only clock.
    pub issued_at_ms: i64,
    /// The caller's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
    /// What to do.
    pub payload: CommandPayload,
}

/// The union of command payloads.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandPayload {
    /// Create a draft invoice.
    CreateInvoice(CreateInvoice),
    /// Issue (send) a draft invoice: it becomes payable and counts as outstanding.
    IssueInvoice {
        /// The invoice.
        invoice_id: String,
    },
    /// Record a payment against an issued invoice.
    RecordPayment(RecordPayment),
    /// Void an invoice that has no payments.
    VoidInvoice {
        /// The invoice.
        invoice_id: String,
        /// Why, for the audit log.
        reason: Option<String>,
    },
}

impl CommandEnvelope {
    /// The envelope's fields but the payload, borrowed.
    pub fn head(&self) -> CommandHead<'_> {
        CommandHead {
            command_id: &self.command_id,
            tenant_id: &self.tenant_id,
            correlation_id: self.correlation_id.as_deref(),
            issued_at_ms: self.issued_at_ms,
            idempotency_key: self.idempotency_key.as_deref(),
        }
    }
}

/// A [`CommandEnvelope`]'s fields but the payload, borrowed: what the gateway encodes a
/// command with, from the request's and the tenant's strings, without copying them into an
/// envelope per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHead<'a> {
    /// As [`CommandEnvelope::command_id`].
    pub command_id: &'a str,
    /// As [`CommandEnvelope::tenant_id`].
    pub tenant_id: &'a str,
    /// As [`CommandEnvelope::correlation_id`].
    pub correlation_id: Option<&'a str>,
    /// As [`CommandEnvelope::issued_at_ms`].
    pub issued_at_ms: i64,
    /// As [`CommandEnvelope::idempotency_key`].
    pub idempotency_key: Option<&'a str>,
}

impl CommandPayload {
    /// The invoice the command acts on.
    pub fn invoice_id(&self) -> &str {
        match self {
            CommandPayload::CreateInvoice(c) => &c.invoice_id,
            CommandPayload::IssueInvoice { invoice_id } => invoice_id,
            CommandPayload::RecordPayment(p) => &p.invoice_id,
            CommandPayload::VoidInvoice { invoice_id, .. } => invoice_id,
        }
    }

    /// The invoice the command acts on, taken out of the payload.
    pub fn into_invoice_id(self) -> String {
        match self {
            CommandPayload::CreateInvoice(c) => c.invoice_id,
            CommandPayload::IssueInvoice { invoice_id } => invoice_id,
            CommandPayload::RecordPayment(p) => p.invoice_id,
            CommandPayload::VoidInvoice { invoice_id, .. } => invoice_id,
        }
    }

    /// Stable snake_case name, used in rejections, metrics and the HTTP batch API.
    pub fn type_name(&self) -> &'static str {
        match self {
            CommandPayload::CreateInvoice(_) => "create_invoice",
            CommandPayload::IssueInvoice { .. } => "issue_invoice",
            CommandPayload::RecordPayment(_) => "record_payment",
            CommandPayload::VoidInvoice { .. } => "void_invoice",
        }
    }
}

/// Create a draft invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateInvoice {
    /// Client-chosen or derived from the command id.
    pub invoice_id: String,
    /// The customer billed.
    pub customer_id: String,
    /// Currency of every amount on the invoice.
    pub currency: Currency,
    /// Issue date; its year picks the hot-store partition.
    pub issue_date: Date,
    /// Due date; on or after the issue date.
    pub due_date: Date,
    /// At least one line.
    pub lines: Vec<LineItem>,
    /// Free-form caller metadata, kept with the invoice.
    pub metadata: BTreeMap<String, String>,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// What is billed.
    pub description: String,
    /// Positive, up to 6 decimal places.
    pub quantity: Decimal,
    /// Zero or more, up to 6 decimal places.
    pub unit_price: Decimal,
    /// Percent (20 = 20 %), 0 to 100, up to 4 decimal places.
    pub tax_rate: Decimal,
}

/// Record a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPayment {
    /// The invoice paid.
    pub invoice_id: String,
    /// Positive, in whole minor units of the currency.
    pub amount: Decimal,
    /// Must equal the invoice's currency.
    pub currency: Currency,
    /// e.g. `card`, `bank_transfer`.
    pub method: String,
    /// The payment provider's reference.
    pub external_reference: Option<String>,
    /// The day the money arrived; drives "paid this month".
    pub received_on: Date,
}
