//! Direct Avro binary encoding and decoding of this release's envelopes (v1), without
//! building `apache_avro::types::Value` trees.
//!
//! The generic path (apache-avro values, schema resolution) costs several allocations per
//! field; this one writes and reads the bytes the schemas define, field by field, in schema
//! order. Tests prove it byte-identical to apache-avro's encoding. Data written with another
//! schema version still goes through apache-avro's resolution (see [`crate::catalog`]).

use crate::codec::{AMOUNT_SCALE, PRICE_SCALE, RATE_SCALE};
use crate::command::{CommandEnvelope, CommandHead, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use crate::event::{Event, EventEnvelope, EventHead};
use crate::{Currency, Date, SchemaError};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- writing

struct W(Vec<u8>);

impl W {
    fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.long(0),
            Some(s) => {
                self.long(1);
                self.str(s);
            }
        }
    }
    fn date(&mut self, d: Date) {
        self.long(i64::from(d.days()));
    }
    fn dec(&mut self, d: Decimal, scale: u32, field: &str) -> Result<(), SchemaError> {
        let (buf, start) = decimal_bytes(d, scale, field)?;
        self.bytes(&buf[start..]);
        Ok(())
    }
}

/// 10^k for every scale a Decimal has.
const POW10: [u128; 29] = {
    let mut t = [1u128; 29];
    let mut k = 1;
    while k < 29 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// The largest magnitude whose product with 10^k is still under 2^96 (a Decimal's range).
const FITS_TIMES_POW10: [u128; 29] = {
    let mut t = [0u128; 29];
    let mut k = 0;
    while k < 29 {
        t[k] = ((1u128 << 96) - 1) / POW10[k];
        k += 1;
    }
    t
};

/// Two's-complement big-endian bytes of `d` at exactly `scale` places, shortest form:
/// the buffer and where the significant bytes start.
pub(crate) fn decimal_bytes(d: Decimal, scale: u32, field: &str) -> Result<([u8; 16], usize), SchemaError> {
    let err = |m: String| SchemaError::Encode { field: field.to_string(), message: m };
    let mantissa = if d.scale() <= scale {
        // The common case, a value with no more places than the wire: its mantissa times a
        // power of ten, in range if under 2^96 like any Decimal's. (Through `rescale` and a
        // comparison, rust_decimal's 96-bit arithmetic, encoding the events' decimals was
        // 5 % of the applier's instructions.)
        let k = (scale - d.scale()) as usize;
        let m = d.mantissa();
        match (POW10.get(k), FITS_TIMES_POW10.get(k)) {
            (Some(&f), Some(&limit)) if m.unsigned_abs() <= limit => {
                let scaled = (m.unsigned_abs() * f) as i128;
                if m < 0 { -scaled } else { scaled }
            }
            _ => return Err(err(format!("{d} does not fit at scale {scale}"))),
        }
    } else {
        if d.round_dp(scale) != d {
            return Err(err(format!("{d} has more than {scale} decimal places")));
        }
        let mut x = d;
        x.rescale(scale);
        if x.scale() != scale || x != d {
            return Err(err(format!("{d} does not fit at scale {scale}")));
        }
        x.mantissa()
    };
    let bytes = mantissa.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok((bytes, start))
}

/// The Avro body of a command under the v1 schema.
pub fn encode_command(c: &CommandEnvelope) -> Result<Vec<u8>, SchemaError> {
    encode_command_after(Vec::with_capacity(256), c)
}

/// Appends the Avro body of a command to `prefix` (a framing header, say: one allocation and
/// no copy for the whole message).
pub fn encode_command_after(prefix: Vec<u8>, c: &CommandEnvelope) -> Result<Vec<u8>, SchemaError> {
    encode_command_parts_after(prefix, &c.head(), &c.payload)
}

/// Appends the Avro body of the command `head` and `payload` make, as
/// [`encode_command_after`], from borrowed envelope fields.
pub fn encode_command_parts_after(prefix: Vec<u8>, head: &CommandHead<'_>, payload: &CommandPayload) -> Result<Vec<u8>, SchemaError> {
    let mut w = W(prefix);
    w.str(head.command_id);
    w.str(head.tenant_id);
    w.opt_str(head.correlation_id);
    w.long(head.issued_at_ms);
    w.opt_str(head.idempotency_key);
    match payload {
        CommandPayload::CreateInvoice(ci) => {
            w.long(0);
            w.str(&ci.invoice_id);
            w.str(&ci.customer_id);
            w.str(ci.currency.code());
            w.date(ci.issue_date);
            w.date(ci.due_date);
            if !ci.lines.is_empty() {
                w.long(ci.lines.len() as i64);
                for l in &ci.lines {
                    w.str(&l.description);
                    w.dec(l.quantity, PRICE_SCALE, "payload.lines.quantity")?;
                    w.dec(l.unit_price, PRICE_SCALE, "payload.lines.unit_price")?;
                    w.dec(l.tax_rate, RATE_SCALE, "payload.lines.tax_rate")?;
                }
            }
            w.long(0);
            if !ci.metadata.is_empty() {
                w.long(ci.metadata.len() as i64);
                for (k, v) in &ci.metadata {
                    w.str(k);
                    w.str(v);
                }
            }
            w.long(0);
        }
        CommandPayload::IssueInvoice { invoice_id } => {
            w.long(1);
            w.str(invoice_id);
        }
        CommandPayload::RecordPayment(p) => {
            w.long(2);
            w.str(&p.invoice_id);
            w.dec(p.amount, AMOUNT_SCALE, "payload.amount")?;
            w.str(p.currency.code());
            w.str(&p.method);
            w.opt_str(p.external_reference.as_deref());
            w.date(p.received_on);
        }
        CommandPayload::VoidInvoice { invoice_id, reason } => {
            w.long(3);
            w.str(invoice_id);
            w.opt_str(reason.as_deref());
        }
    }
    Ok(w.0)
}

/// The Avro body of an event under the v1 schema.
pub fn encode_event(e: &EventEnvelope) -> Result<Vec<u8>, SchemaError> {
    encode_event_after(Vec::with_capacity(192), e)
}

/// Appends the Avro body of an event to `prefix`, as [`encode_command_after`].
pub fn encode_event_after(prefix: Vec<u8>, e: &EventEnvelope) -> Result<Vec<u8>, SchemaError> {
    encode_event_parts_after(prefix, &e.head(), &e.event)
}

/// Appends the Avro body of the event `head` and `event` make, as [`encode_event_after`],
/// from borrowed envelope fields.
pub fn encode_event_parts_after(prefix: Vec<u8>, head: &EventHead<'_>, event: &Event) -> Result<Vec<u8>, SchemaError> {
    let mut w = W(prefix);
    w.str(head.event_id);
    w.str(head.command_id);
    w.str(head.tenant_id);
    w.opt_str(head.correlation_id);
    w.long(head.occurred_at_ms);
    match event {
        Event::InvoiceCreated { invoice_id, customer_id, currency, issue_date, due_date, line_count, subtotal, tax, total } => {
            w.long(0);
            w.str(invoice_id);
            w.str(customer_id);
            w.str(currency.code());
            w.date(*issue_date);
            w.date(*due_date);
            w.long(i64::from(*line_count));
            w.dec(*subtotal, AMOUNT_SCALE, "event.subtotal")?;
            w.dec(*tax, AMOUNT_SCALE, "event.tax")?;
            w.dec(*total, AMOUNT_SCALE, "event.total")?;
        }
        Event::InvoiceIssued { invoice_id, due_date, total } => {
            w.long(1);
            w.str(invoice_id);
            w.date(*due_date);
            w.dec(*total, AMOUNT_SCALE, "event.total")?;
        }
        Event::PaymentApplied { invoice_id, payment_id, amount, currency, amount_paid, balance_due } => {
            w.long(2);
            w.str(invoice_id);
            w.str(payment_id);
            w.dec(*amount, AMOUNT_SCALE, "event.amount")?;
            w.str(currency.code());
            w.dec(*amount_paid, AMOUNT_SCALE, "event.amount_paid")?;
            w.dec(*balance_due, AMOUNT_SCALE, "event.balance_due")?;
        }
        Event::InvoicePaid { invoice_id, total, paid_on } => {
            w.long(3);
            w.str(invoice_id);
            w.dec(*total, AMOUNT_SCALE, "event.total")?;
            w.date(*paid_on);
        }
        Event::InvoiceVoided { invoice_id, reason } => {
            w.long(4);
            w.str(invoice_id);
            w.opt_str(reason.as_deref());
        }
        Event::CommandRejected { command_type, invoice_id, code, message } => {
            w.long(5);
            w.str(command_type);
            w.opt_str(invoice_id.as_deref());
            w.str(code);
            w.str(message);
        }
    }
    Ok(w.0)
}

// ---------------------------------------------------------------- reading

struct R<'a> {
    buf: &'a [u8],
}

fn short(field: &str) -> SchemaError {
    SchemaError::Avro(format!("truncated in field `{field}`"))
}

impl<'a> R<'a> {
    fn long(&mut self, field: &str) -> Result<i64, SchemaError> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let (&b, rest) = self.buf.split_first().ok_or_else(|| short(field))?;
            self.buf = rest;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return Err(SchemaError::Avro(format!("varint too long in field `{field}`")));
            }
        }
    }
    fn int(&mut self, field: &str) -> Result<i32, SchemaError> {
        i32::try_from(self.long(field)?).map_err(|_| SchemaError::Avro(format!("int out of range in field `{field}`")))
    }
    fn bytes(&mut self, field: &str) -> Result<&'a [u8], SchemaError> {
        let len = self.long(field)?;
        let len = usize::try_from(len).map_err(|_| SchemaError::Avro(format!("negative length in field `{field}`")))?;
        if len > self.buf.len() {
            return Err(short(field));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }
    fn str(&mut self, field: &str) -> Result<String, SchemaError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b).map(str::to_string).map_err(|_| SchemaError::Avro(format!("invalid UTF-8 in field `{field}`")))
    }
    fn union(&mut self, field: &str, branches: i64) -> Result<i64, SchemaError> {
        let i = self.long(field)?;
        if !(0..branches).contains(&i) {
            return Err(SchemaError::Avro(format!("union branch {i} out of range in field `{field}`")));
        }
        Ok(i)
    }
    fn opt_str(&mut self, field: &str) -> Result<Option<String>, SchemaError> {
        match self.union(field, 2)? {
            0 => Ok(None),
            _ => self.str(field).map(Some),
        }
    }
    fn date(&mut self, field: &str) -> Result<Date, SchemaError> {
        self.int(field).map(Date::from_days)
    }
    fn currency(&mut self, field: &str) -> Result<Currency, SchemaError> {
        let s = self.bytes(field)?;
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| SchemaError::field(field, format!("expected an ISO 4217 currency code, got {:?}", String::from_utf8_lossy(s))))
    }
    fn dec(&mut self, field: &str, scale: u32) -> Result<Decimal, SchemaError> {
        let b = self.bytes(field)?;
        crate::codec::decimal_from_bytes(b, scale)
            .ok_or_else(|| SchemaError::field(field, "decimal does not fit in 28 significant digits"))
    }
    /// Item count of the next array or map block; a negative count is followed by the
    /// block's byte size, which is skipped.
    fn block(&mut self, field: &str) -> Result<usize, SchemaError> {
        let n = self.long(field)?;
        if n < 0 {
            self.long(field)?;
        }
        let n = n.unsigned_abs() as usize;
        // Every item takes at least one byte: a count larger than what is left is a lie.
        if n > self.buf.len() {
            return Err(short(field));
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), SchemaError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SchemaError::Avro(format!("{} trailing bytes after the datum", self.buf.len())))
        }
    }
}

/// Reads a v1 command body.
pub fn decode_command(body: &[u8]) -> Result<CommandEnvelope, SchemaError> {
    let mut r = R { buf: body };
    let command_id = r.str("command_id")?;
    let tenant_id = r.str("tenant_id")?;
    let correlation_id = r.opt_str("correlation_id")?;
    let issued_at_ms = r.long("issued_at")?;
    let idempotency_key = r.opt_str("idempotency_key")?;
    let payload = match r.union("payload", 4)? {
        0 => {
            let invoice_id = r.str("payload.invoice_id")?;
            let customer_id = r.str("payload.customer_id")?;
            let currency = r.currency("payload.currency")?;
            let issue_date = r.date("payload.issue_date")?;
            let due_date = r.date("payload.due_date")?;
            let mut lines = Vec::new();
            loop {
                let n = r.block("payload.lines")?;
                if n == 0 {
                    break;
                }
                lines.reserve(n);
                for _ in 0..n {
                    lines.push(LineItem {
                        description: r.str("payload.lines.description")?,
                        quantity: r.dec("payload.lines.quantity", PRICE_SCALE)?,
                        unit_price: r.dec("payload.lines.unit_price", PRICE_SCALE)?,
                        tax_rate: r.dec("payload.lines.tax_rate", RATE_SCALE)?,
                    });
                }
            }
            let mut metadata = BTreeMap::new();
            loop {
                let n = r.block("payload.metadata")?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    let k = r.str("payload.metadata")?;
                    let v = r.str("payload.metadata")?;
                    metadata.insert(k, v);
                }
            }
            CommandPayload::CreateInvoice(CreateInvoice { invoice_id, customer_id, currency, issue_date, due_date, lines, metadata })
        }
        1 => CommandPayload::IssueInvoice { invoice_id: r.str("payload.invoice_id")? },
        2 => CommandPayload::RecordPayment(RecordPayment {
            invoice_id: r.str("payload.invoice_id")?,
            amount: r.dec("payload.amount", AMOUNT_SCALE)?,
            currency: r.currency("payload.currency")?,
            method: r.str("payload.method")?,
            external_reference: r.opt_str("payload.external_reference")?,
            received_on: r.date("payload.received_on")?,
        }),
        _ => CommandPayload::VoidInvoice { invoice_id: r.str("payload.invoice_id")?, reason: r.opt_str("payload.reason")? },
    };
    r.end()?;
    Ok(CommandEnvelope { command_id, tenant_id, correlation_id, issued_at_ms, idempotency_key, payload })
}

/// Reads a v1 event body.
pub fn decode_event(body: &[u8]) -> Result<EventEnvelope, SchemaError> {
    let mut r = R { buf: body };
    let event_id = r.str("event_id")?;
    let command_id = r.str("command_id")?;
    let tenant_id = r.str("tenant_id")?;
    let correlation_id = r.opt_str("correlation_id")?;
    let occurred_at_ms = r.long("occurred_at")?;
    let event = match r.union("event", 6)? {
        0 => Event::InvoiceCreated {
            invoice_id: r.str("event.invoice_id")?,
            customer_id: r.str("event.customer_id")?,
            currency: r.currency("event.currency")?,
            issue_date: r.date("event.issue_date")?,
            due_date: r.date("event.due_date")?,
            line_count: r.int("event.line_count")?,
            subtotal: r.dec("event.subtotal", AMOUNT_SCALE)?,
            tax: r.dec("event.tax", AMOUNT_SCALE)?,
            total: r.dec("event.total", AMOUNT_SCALE)?,
        },
        1 => Event::InvoiceIssued {
            invoice_id: r.str("event.invoice_id")?,
            due_date: r.date("event.due_date")?,
            total: r.dec("event.total", AMOUNT_SCALE)?,
        },
        2 => Event::PaymentApplied {
            invoice_id: r.str("event.invoice_id")?,
            payment_id: r.str("event.payment_id")?,
            amount: r.dec("event.amount", AMOUNT_SCALE)?,
            currency: r.currency("event.currency")?,
            amount_paid: r.dec("event.amount_paid", AMOUNT_SCALE)?,
            balance_due: r.dec("event.balance_due", AMOUNT_SCALE)?,
        },
        3 => Event::InvoicePaid {
            invoice_id: r.str("event.invoice_id")?,
            total: r.dec("event.total", AMOUNT_SCALE)?,
            paid_on: r.date("event.paid_on")?,
        },
        4 => Event::InvoiceVoided { invoice_id: r.str("event.invoice_id")?, reason: r.opt_str("event.reason")? },
        _ => Event::CommandRejected {
            command_type: r.str("event.command_type")?,
            invoice_id: r.opt_str("event.invoice_id")?,
            code: r.str("event.code")?,
            message: r.str("event.message")?,
        },
    };
    r.end()?;
    Ok(EventEnvelope { event_id, command_id, tenant_id, correlation_id, occurred_at_ms, event })
}
