//! Invoice state, its transitions and the rules they enforce.

use super::ids;
use billstream_schemas::command::{CommandEnvelope, CommandHead, CommandPayload, CreateInvoice, RecordPayment};
use billstream_schemas::money::line_amounts;
use billstream_schemas::{Currency, Date, Event};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where an invoice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum InvoiceStatus {
    /// Created, not yet sent; not a receivable.
    Draft,
    /// Issued and not fully paid: counts as outstanding.
    Open,
    /// Paid in full.
    Paid,
    /// Cancelled before any payment.
    Void,
}

impl InvoiceStatus {
    /// Every status, in display order.
    pub const ALL: [InvoiceStatus; 4] =
        [InvoiceStatus::Draft, InvoiceStatus::Open, InvoiceStatus::Paid, InvoiceStatus::Void];

    /// snake_case name, as in the HTTP API.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A one-byte tag for storage keys.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// One line with its rounded amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// What is billed.
    pub description: String,
    /// Quantity.
    #[serde(with = "crate::stored_decimal")]
    pub quantity: Decimal,
    /// Unit price.
    #[serde(with = "crate::stored_decimal")]
    pub unit_price: Decimal,
    /// Tax rate in percent.
    #[serde(with = "crate::stored_decimal")]
    pub tax_rate: Decimal,
    /// Rounded net amount.
    #[serde(with = "crate::stored_decimal")]
    pub net: Decimal,
    /// Rounded tax amount.
    #[serde(with = "crate::stored_decimal")]
    pub tax: Decimal,
}

/// One applied payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Derived from the command id.
    pub payment_id: String,
    /// The command that recorded it.
    pub command_id: String,
    /// Amount.
    #[serde(with = "crate::stored_decimal")]
    pub amount: Decimal,
    /// e.g. `card`.
    pub method: String,
    /// Provider reference.
    pub external_reference: Option<String>,
    /// Day the money arrived.
    pub received_on: Date,
}

/// The invoice aggregate as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// Owner.
    pub tenant_id: String,
    /// Id, unique within the tenant.
    pub invoice_id: String,
    /// Customer.
    pub customer_id: String,
    /// Currency of all amounts.
    pub currency: Currency,
    /// Issue date (its year is the storage partition).
    pub issue_date: Date,
    /// Due date.
    pub due_date: Date,
    /// Lifecycle state.
    pub status: InvoiceStatus,
    /// Lines with rounded amounts. Fixed at creation and shared between the copies of an
    /// invoice (each command's decision starts from a copy; the batch overlay keeps one):
    /// cloning and dropping whole invoices was a tenth of the processor thread. Stored as a
    /// sequence, as before.
    pub lines: Arc<[InvoiceLine]>,
    /// Sum of line nets.
    #[serde(with = "crate::stored_decimal")]
    pub subtotal: Decimal,
    /// Sum of line taxes.
    #[serde(with = "crate::stored_decimal")]
    pub tax: Decimal,
    /// subtotal + tax.
    #[serde(with = "crate::stored_decimal")]
    pub total: Decimal,
    /// Sum of payments.
    #[serde(with = "crate::stored_decimal")]
    pub amount_paid: Decimal,
    /// Payments in the order applied.
    pub payments: Vec<Payment>,
    /// Caller metadata.
    pub metadata: BTreeMap<String, String>,
    /// Why it was voided.
    pub void_reason: Option<String>,
    /// When the last change's command was issued (Unix ms).
    pub updated_at_ms: i64,
    /// Command that created it.
    pub created_by: String,
}

impl Invoice {
    /// total − amount paid.
    pub fn balance_due(&self) -> Decimal {
        self.total - self.amount_paid
    }

    /// The hot-store partition year.
    pub fn year(&self) -> i32 {
        self.issue_date.year()
    }
}

/// Why a command changed nothing: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable machine-readable reason (`invoice_not_found`, `overpayment`, ...).
    pub code: String,
    /// What was wrong and what would be right.
    pub message: String,
}

impl Rejection {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Rejection { code: code.to_string(), message: message.into() }
    }
}

/// The outcome of one command against one invoice.
// Made and consumed once per command, on the stack; boxing the invoice would add an
// allocation per command on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The invoice's new state and the events saying what happened.
    Accepted {
        /// New state.
        invoice: Invoice,
        /// Events, in order (ids already derived).
        events: Vec<Event>,
    },
    /// Nothing changed; a `CommandRejected` event is emitted.
    Rejected(Rejection),
}

/// Longest id (invoice, customer) accepted, in bytes.
const MAX_ID_LEN: usize = 128;

/// Checks an id a producer chose: non-empty, bounded, printable (ids become storage keys).
pub(crate) fn check_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(Rejection::new(
            "invalid_command",
            format!("{field} must be 1 to {MAX_ID_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// Applies one command to the current state of its invoice: [`plan`], then the change
/// applied to a copy.
pub fn decide(current: Option<&Invoice>, mut cmd: CommandEnvelope) -> Decision {
    match plan(current, &mut cmd) {
        Ok((change, events)) => {
            let mut invoice = current.cloned();
            change.apply(&mut invoice, cmd.issued_at_ms);
            match invoice {
                Some(invoice) => Decision::Accepted { invoice, events },
                None => Decision::Rejected(Rejection::new("invoice_not_found", "no invoice to change")),
            }
        }
        Err(r) => Decision::Rejected(r),
    }
}

/// What an accepted command does to its invoice. Decided by [`plan`] against a borrowed
/// invoice; [`Change::apply`] then changes it in place. The processor applies it only once
/// the command's events are encoded, so nothing is copied per command (a copy of the invoice
/// per command, its strings and payments, was the largest share of the processor's
/// allocations).
// Made and consumed once per command, on the stack; boxing the invoice would add an
// allocation per create.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new invoice.
    Create(Invoice),
    /// Issued: open, or paid at once when the total is zero.
    Issue {
        /// The status it moves to.
        status: InvoiceStatus,
    },
    /// A payment applied.
    Pay {
        /// The payment, its amount rounded to the currency.
        payment: Payment,
        /// The status after it (paid when nothing is left to pay).
        status: InvoiceStatus,
    },
    /// Voided.
    Void {
        /// Why.
        reason: Option<String>,
    },
}

impl Change {
    /// Applies the change to the invoice [`plan`] decided it against; `issued_at_ms` is the
    /// command's. A change other than `Create` leaves an absent invoice absent (it was planned
    /// against an existing one).
    pub fn apply(self, invoice: &mut Option<Invoice>, issued_at_ms: i64) {
        let inv = match (self, invoice.as_mut()) {
            (Change::Create(new), _) => {
                *invoice = Some(new);
                return;
            }
            (_, None) => return,
            (Change::Issue { status }, Some(inv)) => {
                inv.status = status;
                inv
            }
            (Change::Pay { payment, status }, Some(inv)) => {
                inv.amount_paid += payment.amount;
                inv.payments.push(payment);
                inv.status = status;
                inv
            }
            (Change::Void { reason }, Some(inv)) => {
                inv.status = InvoiceStatus::Void;
                inv.void_reason = reason;
                inv
            }
        };
        inv.updated_at_ms = issued_at_ms;
    }
}

/// Decides one command against the current state of its invoice, changing nothing of the
/// invoice: the change to apply and the events it produces, or why it is rejected.
///
/// The payload's text that only the change keeps is taken out of the command, not copied:
/// a create's line descriptions and metadata, a payment's method and reference, a void's
/// reason (`String` copies in `plan` were 2 % of the processor thread). Whatever the outcome,
/// the command is left good for what is read of it after the decision (its ids, type, time,
/// correlation id, and the payload's invoice id), not for those fields.
pub fn plan(current: Option<&Invoice>, cmd: &mut CommandEnvelope) -> Result<(Change, Vec<Event>), Rejection> {
    // The envelope's other fields, borrowed alongside the payload's mutable borrow.
    let CommandEnvelope { command_id, tenant_id, correlation_id, issued_at_ms, idempotency_key, payload } = cmd;
    let head = CommandHead {
        command_id,
        tenant_id,
        correlation_id: correlation_id.as_deref(),
        issued_at_ms: *issued_at_ms,
        idempotency_key: idempotency_key.as_deref(),
    };
    match payload {
        CommandPayload::CreateInvoice(c) => create(current, head, c),
        CommandPayload::IssueInvoice { invoice_id } => existing(current, invoice_id).and_then(|inv| issue(inv, head)),
        CommandPayload::RecordPayment(p) => existing(current, &p.invoice_id).and_then(|inv| pay(inv, head, p)),
        CommandPayload::VoidInvoice { invoice_id, reason } => existing(current, invoice_id).and_then(|inv| void(inv, reason)),
    }
}

fn existing<'a>(current: Option<&'a Invoice>, invoice_id: &str) -> Result<&'a Invoice, Rejection> {
    check_id("invoice_id", invoice_id)?;
    current.ok_or_else(|| Rejection::new("invoice_not_found", format!("no invoice {invoice_id:?} for this tenant")))
}

fn create(current: Option<&Invoice>, cmd: CommandHead<'_>, c: &mut CreateInvoice) -> Result<(Change, Vec<Event>), Rejection> {
    check_id("invoice_id", &c.invoice_id)?;
    check_id("customer_id", &c.customer_id)?;
    if current.is_some() {
        return Err(Rejection::new("invoice_exists", format!("invoice {:?} already exists", c.invoice_id)));
    }
    if c.lines.is_empty() {
        return Err(Rejection::new("invalid_command", "lines: an invoice needs at least one line"));
    }
    if c.due_date < c.issue_date {
        return Err(Rejection::new(
            "invalid_command",
            format!("due_date {} is before issue_date {}", c.due_date, c.issue_date),
        ));
    }
    let mut lines = Vec::with_capacity(c.lines.len());
    let (mut subtotal, mut tax) = (Decimal::ZERO, Decimal::ZERO);
    for (i, l) in c.lines.iter_mut().enumerate() {
        if l.quantity <= Decimal::ZERO {
            return Err(Rejection::new("invalid_command", format!("lines[{i}].quantity must be positive, got {}", l.quantity)));
        }
        if l.unit_price < Decimal::ZERO {
            return Err(Rejection::new("invalid_command", format!("lines[{i}].unit_price must not be negative, got {}", l.unit_price)));
        }
        if l.tax_rate < Decimal::ZERO || l.tax_rate > Decimal::ONE_HUNDRED {
            return Err(Rejection::new("invalid_command", format!("lines[{i}].tax_rate must be a percentage from 0 to 100, got {}", l.tax_rate)));
        }
        let amounts = line_amounts(c.currency, l.quantity, l.unit_price, l.tax_rate)
            .map_err(|e| Rejection::new("amount_overflow", format!("lines[{i}]: {e}")))?;
        subtotal = subtotal.checked_add(amounts.net).ok_or_else(|| Rejection::new("amount_overflow", "subtotal overflows"))?;
        tax = tax.checked_add(amounts.tax).ok_or_else(|| Rejection::new("amount_overflow", "tax overflows"))?;
        lines.push(InvoiceLine {
            description: std::mem::take(&mut l.description),
            quantity: l.quantity,
            unit_price: l.unit_price,
            tax_rate: l.tax_rate,
            net: amounts.net,
            tax: amounts.tax,
        });
    }
    let total = subtotal.checked_add(tax).ok_or_else(|| Rejection::new("amount_overflow", "total overflows"))?;
    // Totals must stay encodable at the wire scale: 28 digits with 4 decimals.
    if total.abs() >= Decimal::from(10_i64.pow(15)) * Decimal::from(1000) {
        return Err(Rejection::new("amount_overflow", format!("total {total} exceeds the largest supported amount")));
    }
    let invoice = Invoice {
        tenant_id: cmd.tenant_id.to_string(),
        invoice_id: c.invoice_id.clone(),
        customer_id: c.customer_id.clone(),
        currency: c.currency,
        issue_date: c.issue_date,
        due_date: c.due_date,
        status: InvoiceStatus::Draft,
        lines: lines.into(),
        subtotal,
        tax,
        total,
        amount_paid: Decimal::ZERO,
        payments: Vec::new(),
        metadata: std::mem::take(&mut c.metadata),
        void_reason: None,
        updated_at_ms: cmd.issued_at_ms,
        created_by: cmd.command_id.to_string(),
    };
    let event = Event::InvoiceCreated {
        invoice_id: invoice.invoice_id.clone(),
        customer_id: invoice.customer_id.clone(),
        currency: invoice.currency,
        issue_date: invoice.issue_date,
        due_date: invoice.due_date,
        line_count: invoice.lines.len() as i32,
        subtotal,
        tax,
        total,
    };
    Ok((Change::Create(invoice), vec![event]))
}

fn issue(inv: &Invoice, cmd: CommandHead<'_>) -> Result<(Change, Vec<Event>), Rejection> {
    if inv.status != InvoiceStatus::Draft {
        return Err(Rejection::new(
            "invalid_state",
            format!("only a draft invoice can be issued; {} is {}", inv.invoice_id, inv.status.as_str()),
        ));
    }
    let mut events = vec![Event::InvoiceIssued { invoice_id: inv.invoice_id.clone(), due_date: inv.due_date, total: inv.total }];
    // A zero-total invoice is settled the moment it is issued.
    if inv.total.is_zero() {
        events.push(Event::InvoicePaid {
            invoice_id: inv.invoice_id.clone(),
            total: inv.total,
            paid_on: Date::from_unix_millis(cmd.issued_at_ms),
        });
        return Ok((Change::Issue { status: InvoiceStatus::Paid }, events));
    }
    Ok((Change::Issue { status: InvoiceStatus::Open }, events))
}

fn pay(inv: &Invoice, cmd: CommandHead<'_>, p: &mut RecordPayment) -> Result<(Change, Vec<Event>), Rejection> {
    match inv.status {
        InvoiceStatus::Open => {}
        InvoiceStatus::Draft => {
            return Err(Rejection::new("invoice_not_issued", format!("invoice {} is a draft; issue it before recording payments", inv.invoice_id)));
        }
        InvoiceStatus::Paid => {
            return Err(Rejection::new("invoice_already_paid", format!("invoice {} is already paid in full", inv.invoice_id)));
        }
        InvoiceStatus::Void => {
            return Err(Rejection::new("invoice_voided", format!("invoice {} is void", inv.invoice_id)));
        }
    }
    if p.currency != inv.currency {
        return Err(Rejection::new(
            "currency_mismatch",
            format!("payment is in {} but invoice {} is in {}", p.currency, inv.invoice_id, inv.currency),
        ));
    }
    if p.amount <= Decimal::ZERO || !inv.currency.is_whole_minor(p.amount) {
        return Err(Rejection::new(
            "invalid_amount",
            format!("amount must be positive with at most {} decimal places for {}, got {}", inv.currency.minor_units(), inv.currency, p.amount),
        ));
    }
    let balance = inv.balance_due();
    if p.amount > balance {
        return Err(Rejection::new(
            "overpayment",
            format!("amount {} exceeds the balance due {} of invoice {}", p.amount, balance, inv.invoice_id),
        ));
    }
    let payment_id = ids::payment_id(cmd.command_id);
    let amount = inv.currency.round(p.amount);
    let amount_paid = inv.amount_paid + amount;
    let balance_due = inv.total - amount_paid;
    let mut events = vec![Event::PaymentApplied {
        invoice_id: inv.invoice_id.clone(),
        payment_id: payment_id.clone(),
        amount,
        currency: p.currency,
        amount_paid,
        balance_due,
    }];
    let status = if balance_due.is_zero() {
        events.push(Event::InvoicePaid { invoice_id: inv.invoice_id.clone(), total: inv.total, paid_on: p.received_on });
        InvoiceStatus::Paid
    } else {
        InvoiceStatus::Open
    };
    let payment = Payment {
        payment_id,
        command_id: cmd.command_id.to_string(),
        amount,
        method: std::mem::take(&mut p.method),
        external_reference: p.external_reference.take(),
        received_on: p.received_on,
    };
    Ok((Change::Pay { payment, status }, events))
}

fn void(inv: &Invoice, reason: &mut Option<String>) -> Result<(Change, Vec<Event>), Rejection> {
    if inv.status == InvoiceStatus::Void {
        return Err(Rejection::new("invalid_state", format!("invoice {} is already void", inv.invoice_id)));
    }
    if !inv.payments.is_empty() {
        return Err(Rejection::new(
            "has_payments",
            format!("invoice {} has {} payment(s); only an invoice without payments can be voided", inv.invoice_id, inv.payments.len()),
        ));
    }
    let event = Event::InvoiceVoided { invoice_id: inv.invoice_id.clone(), reason: reason.clone() };
    Ok((Change::Void { reason: reason.take() }, vec![event]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use billstream_schemas::LineItem;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    fn cmd(id: &str, payload: CommandPayload) -> CommandEnvelope {
        CommandEnvelope {
            command_id: id.into(),
            tenant_id: "t".into(),
            correlation_id: None,
            issued_at_ms: 1_700_000_000_000,
            idempotency_key: None,
            payload,
        }
    }

    fn create_cmd() -> CommandEnvelope {
        cmd(
            "c1",
            CommandPayload::CreateInvoice(CreateInvoice {
                invoice_id: "i1".into(),
                customer_id: "cu".into(),
                currency: "EUR".parse().expect("EUR"),
                issue_date: "2026-01-10".parse().expect("date"),
                due_date: "2026-02-10".parse().expect("date"),
                lines: vec![
                    LineItem { description: "a".into(), quantity: d("3"), unit_price: d("0.335"), tax_rate: d("19") },
                    LineItem { description: "b".into(), quantity: d("2"), unit_price: d("10.00"), tax_rate: d("0") },
                ],
                metadata: BTreeMap::new(),
            }),
        )
    }

    fn payment(id: &str, amount: &str) -> CommandEnvelope {
        cmd(
            id,
            CommandPayload::RecordPayment(RecordPayment {
                invoice_id: "i1".into(),
                amount: d(amount),
                currency: "EUR".parse().expect("EUR"),
                method: "card".into(),
                external_reference: None,
                received_on: "2026-01-20".parse().expect("date"),
            }),
        )
    }

    fn accepted(d: Decision) -> (Invoice, Vec<Event>) {
        match d {
            Decision::Accepted { invoice, events } => (invoice, events),
            Decision::Rejected(r) => panic!("rejected: {r:?}"),
        }
    }

    fn rejected(d: Decision) -> String {
        match d {
            Decision::Rejected(r) => r.code,
            Decision::Accepted { .. } => panic!("accepted"),
        }
    }

    #[test]
    fn lifecycle_create_issue_pay_partially_then_fully() {
        let (inv, _) = accepted(decide(None, create_cmd()));
        // 3 × 0.335 = 1.005 → 1.01, tax 0.19; 20.00 net, no tax.
        assert_eq!((inv.subtotal, inv.tax, inv.total), (d("21.01"), d("0.19"), d("21.20")));
        assert_eq!(rejected(decide(Some(&inv), payment("p0", "1"))), "invoice_not_issued");
        let (inv, _) = accepted(decide(Some(&inv), cmd("c2", CommandPayload::IssueInvoice { invoice_id: "i1".into() })));
        assert_eq!(inv.status, InvoiceStatus::Open);
        assert_eq!(rejected(decide(Some(&inv), payment("p1", "21.21"))), "overpayment");
        assert_eq!(rejected(decide(Some(&inv), payment("p1", "0.001"))), "invalid_amount");
        let (inv, ev) = accepted(decide(Some(&inv), payment("p1", "20")));
        assert_eq!((inv.status, inv.balance_due(), ev.len()), (InvoiceStatus::Open, d("1.20"), 1));
        let (inv, ev) = accepted(decide(Some(&inv), payment("p2", "1.2")));
        assert_eq!((inv.status, inv.balance_due(), ev.len()), (InvoiceStatus::Paid, d("0"), 2));
        assert_eq!(inv.payments[0].payment_id, ids::payment_id("p1"));
        assert_eq!(rejected(decide(Some(&inv), payment("p3", "1"))), "invoice_already_paid");
        assert_eq!(rejected(decide(Some(&inv), cmd("v", CommandPayload::VoidInvoice { invoice_id: "i1".into(), reason: None }))), "has_payments");
    }

    #[test]
    fn create_rules() {
        let (inv, _) = accepted(decide(None, create_cmd()));
        assert_eq!(rejected(decide(Some(&inv), create_cmd())), "invoice_exists");
        let mut bad = create_cmd();
        if let CommandPayload::CreateInvoice(c) = &mut bad.payload {
            c.lines[1].quantity = d("0");
        }
        assert_eq!(rejected(decide(None, bad)), "invalid_command");
        let mut bad = create_cmd();
        if let CommandPayload::CreateInvoice(c) = &mut bad.payload {
            c.invoice_id = "a\0b".into();
        }
        assert_eq!(rejected(decide(None, bad)), "invalid_command");
        let mut big = create_cmd();
        if let CommandPayload::CreateInvoice(c) = &mut big.payload {
            c.lines[0].quantity = Decimal::MAX;
            c.lines[0].unit_price = d("2");
        }
        assert_eq!(rejected(decide(None, big)), "amount_overflow");
        assert_eq!(rejected(decide(None, payment("p", "1"))), "invoice_not_found");
    }

    /// `plan` moves the payload's text into the change instead of copying it, and leaves
    /// what the processor reads afterwards (ids, type, invoice id, time) as it was.
    #[test]
    fn plan_takes_only_what_the_change_keeps() {
        let mut c = create_cmd();
        if let CommandPayload::CreateInvoice(p) = &mut c.payload {
            p.metadata.insert("po".into(), "4711".into());
        }
        let before = c.clone();
        let (change, events) = plan(None, &mut c).expect("create");
        let Change::Create(inv) = change else { panic!("not a create") };
        assert_eq!(inv.lines.iter().map(|l| l.description.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(inv.metadata.get("po").map(String::as_str), Some("4711"));
        assert_eq!((inv.customer_id.as_str(), inv.created_by.as_str(), inv.tenant_id.as_str()), ("cu", "c1", "t"));
        assert!(matches!(&events[..], [Event::InvoiceCreated { customer_id, .. }] if customer_id == "cu"));
        assert_eq!((&c.command_id, &c.tenant_id, c.issued_at_ms), (&before.command_id, &before.tenant_id, before.issued_at_ms));
        assert_eq!((c.payload.type_name(), c.payload.invoice_id()), ("create_invoice", "i1"));
        let CommandPayload::CreateInvoice(p) = &c.payload else { unreachable!() };
        assert!(p.lines.iter().all(|l| l.description.is_empty()) && p.metadata.is_empty(), "taken, not copied");

        let (issued, _) = accepted(decide(Some(&inv), cmd("c2", CommandPayload::IssueInvoice { invoice_id: "i1".into() })));
        let mut pay = payment("p1", "5");
        if let CommandPayload::RecordPayment(p) = &mut pay.payload {
            p.external_reference = Some("psp-1".into());
        }
        let (change, _) = plan(Some(&issued), &mut pay).expect("payment");
        let Change::Pay { payment, .. } = change else { panic!("not a payment") };
        assert_eq!((payment.method.as_str(), payment.external_reference.as_deref(), payment.command_id.as_str()), ("card", Some("psp-1"), "p1"));
        assert_eq!((pay.command_id.as_str(), pay.payload.invoice_id()), ("p1", "i1"));

        let mut v = cmd("v", CommandPayload::VoidInvoice { invoice_id: "i1".into(), reason: Some("dup".into()) });
        let (change, events) = plan(Some(&issued), &mut v).expect("void");
        assert_eq!(change, Change::Void { reason: Some("dup".into()) });
        assert!(matches!(&events[..], [Event::InvoiceVoided { reason: Some(r), .. }] if r == "dup"));
        assert_eq!(v.payload.invoice_id(), "i1");
    }

    #[test]
    fn void_only_without_payments() {
        let (inv, _) = accepted(decide(None, create_cmd()));
        let v = cmd("v", CommandPayload::VoidInvoice { invoice_id: "i1".into(), reason: Some("dup".into()) });
        let (inv, _) = accepted(decide(Some(&inv), v.clone()));
        assert_eq!((inv.status, inv.void_reason.as_deref()), (InvoiceStatus::Void, Some("dup")));
        assert_eq!(rejected(decide(Some(&inv), payment("p", "1"))), "invoice_voided");
        assert_eq!(rejected(decide(Some(&inv), v)), "invalid_state");
    }

    /// Random command sequences against one invoice (seeded, 2,000 runs): whatever happens,
    /// the paid amount equals the sum of payments, never exceeds the total, the balance is
    /// never negative, and "paid" means exactly "issued with nothing left to pay".
    #[test]
    fn no_sequence_breaks_the_money_invariants() {
        let mut state: u64 = 0x5eed;
        let mut next = |n: u64| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        };
        for run in 0..2000 {
            let mut inv: Option<Invoice> = None;
            for step in 0..12 {
                let id = format!("r{run}-s{step}");
                let amount = Decimal::new(next(3000) as i64 + 1, 2);
                let payload = match next(6) {
                    0 => create_cmd().payload,
                    1 => CommandPayload::IssueInvoice { invoice_id: "i1".into() },
                    2 => CommandPayload::VoidInvoice { invoice_id: "i1".into(), reason: None },
                    _ => {
                        let CommandPayload::RecordPayment(mut p) = payment(&id, "1").payload else { unreachable!() };
                        p.amount = amount;
                        CommandPayload::RecordPayment(p)
                    }
                };
                if let Decision::Accepted { invoice, .. } = decide(inv.as_ref(), cmd(&id, payload)) {
                    inv = Some(invoice);
                }
                if let Some(i) = &inv {
                    let sum: Decimal = i.payments.iter().map(|p| p.amount).sum();
                    assert_eq!(sum, i.amount_paid, "run {run}");
                    assert!(i.amount_paid <= i.total && i.balance_due() >= Decimal::ZERO, "run {run}: {i:?}");
                    assert_eq!(i.status == InvoiceStatus::Paid, i.balance_due().is_zero() && i.status != InvoiceStatus::Void && i.status != InvoiceStatus::Draft, "run {run}: {i:?}");
                    assert!(i.status != InvoiceStatus::Void || i.payments.is_empty(), "run {run}: a void invoice has no payments");
                    let ids: std::collections::HashSet<_> = i.payments.iter().map(|p| &p.payment_id).collect();
                    assert_eq!(ids.len(), i.payments.len(), "run {run}: no payment twice");
                }
            }
        }
    }
}
