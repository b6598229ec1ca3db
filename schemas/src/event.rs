//! The event envelope (`billing.events`, schema `billing.events-value`).

use crate::{Currency, Date};
use rust_decimal::Decimal;

/// One outcome of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Derived from the command id and the event's position among its outcomes.
    pub event_id: String,
    /// The command that caused it.
    pub command_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The command's correlation id.
    pub correlation_id: Option<String>,
    /// The command's `issued_at`, Unix milliseconds.
    pub occurred_at_ms: i64,
    /// What happened.
    pub event: Event,
}

impl EventEnvelope {
    /// The envelope's fields but the event, borrowed.
    pub fn head(&self) -> EventHead<'_> {
        EventHead {
            event_id: &self.event_id,
            command_id: &self.command_id,
            tenant_id: &self.tenant_id,
            correlation_id: self.correlation_id.as_deref(),
            occurred_at_ms: self.occurred_at_ms,
        }
    }
}

/// An [`EventEnvelope`]'s fields but the event, borrowed: what the processor encodes a
/// command's events with, from the command's own strings, without copying them into an
/// envelope per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHead<'a> {
    /// As [`EventEnvelope::event_id`].
    pub event_id: &'a str,
    /// As [`EventEnvelope::command_id`].
    pub command_id: &'a str,
    /// As [`EventEnvelope::tenant_id`].
    pub tenant_id: &'a str,
    /// As [`EventEnvelope::correlation_id`].
    pub correlation_id: Option<&'a str>,
    /// As [`EventEnvelope::occurred_at_ms`].
    pub occurred_at_ms: i64,
}

/// The union of events.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A draft invoice exists.
    InvoiceCreated {
        /// The invoice.
        invoice_id: String,
        /// Its customer.
        customer_id: String,
        /// Its currency.
        currency: Currency,
        /// Issue date.
        issue_date: Date,
        /// Due date.
        due_date: Date,
        /// Number of lines.
        line_count: i32,
        /// Sum of rounded line nets.
        subtotal: Decimal,
        /// Sum of rounded line taxes.
        tax: Decimal,
        /// subtotal + tax.
        total: Decimal,
    },
    /// The invoice was issued and is now payable.
    InvoiceIssued {
        /// The invoice.
        invoice_id: String,
        /// Due date.
        due_date: Date,
        /// Total due.
        total: Decimal,
    },
    /// A payment was applied.
    PaymentApplied {
        /// The invoice.
        invoice_id: String,
        /// Derived from the command id.
        payment_id: String,
        /// Amount of this payment.
        amount: Decimal,
        /// Its currency.
        currency: Currency,
        /// All payments so far.
        amount_paid: Decimal,
        /// What is still due.
        balance_due: Decimal,
    },
    /// The invoice is paid in full.
    InvoicePaid {
        /// The invoice.
        invoice_id: String,
        /// Its total.
        total: Decimal,
        /// The day of the last payment.
        paid_on: Date,
    },
    /// The invoice was voided.
    InvoiceVoided {
        /// The invoice.
        invoice_id: String,
        /// Why.
        reason: Option<String>,
    },
    /// The command broke a domain rule and changed nothing.
    CommandRejected {
        /// e.g. `record_payment`.
        command_type: String,
        /// The invoice it named.
        invoice_id: Option<String>,
        /// Stable reason code, e.g. `overpayment`.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

impl Event {
    /// Stable snake_case name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::InvoiceCreated { .. } => "invoice_created",
            Event::InvoiceIssued { .. } => "invoice_issued",
            Event::PaymentApplied { .. } => "payment_applied",
            Event::InvoicePaid { .. } => "invoice_paid",
            Event::InvoiceVoided { .. } => "invoice_voided",
            Event::CommandRejected { .. } => "command_rejected",
        }
    }
}
