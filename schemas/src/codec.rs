//! Avro binary encoding of the envelopes and the Confluent wire framing.
//!
//! Messages on the wire are `0x00 | schema id (u32, big endian) | Avro binary datum`, so any
//! Confluent-compatible client can read and write the topics. Decoding resolves the writer's
//! schema (looked up by id) against this release's reader schema, which is how an older or
//! newer producer's messages stay readable.

use crate::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use crate::event::{Event, EventEnvelope};
use crate::{Currency, Date, SchemaError};
use apache_avro::types::Value;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// Scale of money amounts on the wire (covers every ISO 4217 minor unit).
pub const AMOUNT_SCALE: u32 = 4;
/// Scale of quantities and unit prices on the wire.
pub const PRICE_SCALE: u32 = 6;
/// Scale of tax rates (percent) on the wire.
pub const RATE_SCALE: u32 = 4;

/// Prepends the Confluent frame to an Avro body.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = frame_header(schema_id, body.len());
    out.extend_from_slice(body);
    out
}

/// The Confluent framing header alone (magic byte, schema id), with room for a body of
/// `body_capacity` bytes after it.
pub fn frame_header(schema_id: u32, body_capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body_capacity);
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

/// Splits a Confluent-framed message into schema id and Avro body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), SchemaError> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [m, ..] if bytes.len() >= 5 => {
            Err(SchemaError::Framing(format!("magic byte is {m:#04x}, expected 0x00")))
        }
        _ => Err(SchemaError::Framing(format!("{} bytes, a frame needs at least 5", bytes.len()))),
    }
}

// ---------------------------------------------------------------- encoding helpers

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn opt_s(v: &Option<String>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(s(v))),
    }
}

fn date(d: Date) -> Value {
    Value::Date(d.days())
}

/// Encodes a decimal at exactly `scale` places as Avro's two's-complement big-endian bytes.
fn dec(d: Decimal, scale: u32, field: &str) -> Result<Value, SchemaError> {
    let (bytes, start) = crate::binary::decimal_bytes(d, scale, field)?;
    Ok(Value::Decimal(apache_avro::Decimal::from(&bytes[start..])))
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The Avro value of a command envelope (reader schema of this release).
pub fn command_to_value(c: &CommandEnvelope) -> Result<Value, SchemaError> {
    let (index, payload) = match &c.payload {
        CommandPayload::CreateInvoice(ci) => {
            let mut lines = Vec::with_capacity(ci.lines.len());
            for l in &ci.lines {
                lines.push(record(vec![
                    ("description", s(&l.description)),
                    ("quantity", dec(l.quantity, PRICE_SCALE, "payload.lines.quantity")?),
                    ("unit_price", dec(l.unit_price, PRICE_SCALE, "payload.lines.unit_price")?),
                    ("tax_rate", dec(l.tax_rate, RATE_SCALE, "payload.lines.tax_rate")?),
                ]));
            }
            let metadata: HashMap<String, Value> =
                ci.metadata.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            (
                0,
                record(vec![
                    ("invoice_id", s(&ci.invoice_id)),
                    ("customer_id", s(&ci.customer_id)),
                    ("currency", s(ci.currency.code())),
                    ("issue_date", date(ci.issue_date)),
                    ("due_date", date(ci.due_date)),
                    ("lines", Value::Array(lines)),
                    ("metadata", Value::Map(metadata)),
                ]),
            )
        }
        CommandPayload::IssueInvoice { invoice_id } => (1, record(vec![("invoice_id", s(invoice_id))])),
        CommandPayload::RecordPayment(p) => (
            2,
            record(vec![
                ("invoice_id", s(&p.invoice_id)),
                ("amount", dec(p.amount, AMOUNT_SCALE, "payload.amount")?),
                ("currency", s(p.currency.code())),
                ("method", s(&p.method)),
                ("external_reference", opt_s(&p.external_reference)),
                ("received_on", date(p.received_on)),
            ]),
        ),
        CommandPayload::VoidInvoice { invoice_id, reason } => {
            (3, record(vec![("invoice_id", s(invoice_id)), ("reason", opt_s(reason))]))
        }
    };
    Ok(record(vec![
        ("command_id", s(&c.command_id)),
        ("tenant_id", s(&c.tenant_id)),
        ("correlation_id", opt_s(&c.correlation_id)),
        ("issued_at", Value::TimestampMillis(c.issued_at_ms)),
        ("idempotency_key", opt_s(&c.idempotency_key)),
        ("payload", Value::Union(index, Box::new(payload))),
    ]))
}

/// The Avro value of an event envelope (reader schema of this release).
pub fn event_to_value(e: &EventEnvelope) -> Result<Value, SchemaError> {
    let amt = |d: Decimal, f: &str| dec(d, AMOUNT_SCALE, f);
    let (index, body) = match &e.event {
        Event::InvoiceCreated {
            invoice_id, customer_id, currency, issue_date, due_date, line_count, subtotal, tax, total,
        } => (
            0,
            record(vec![
                ("invoice_id", s(invoice_id)),
                ("customer_id", s(customer_id)),
                ("currency", s(currency.code())),
                ("issue_date", date(*issue_date)),
                ("due_date", date(*due_date)),
                ("line_count", Value::Int(*line_count)),
                ("subtotal", amt(*subtotal, "event.subtotal")?),
                ("tax", amt(*tax, "event.tax")?),
                ("total", amt(*total, "event.total")?),
            ]),
        ),
        Event::InvoiceIssued { invoice_id, due_date, total } => (
            1,
            record(vec![
                ("invoice_id", s(invoice_id)),
                ("due_date", date(*due_date)),
                ("total", amt(*total, "event.total")?),
            ]),
        ),
        Event::PaymentApplied { invoice_id, payment_id, amount, currency, amount_paid, balance_due } => (
            2,
            record(vec![
                ("invoice_id", s(invoice_id)),
                ("payment_id", s(payment_id)),
                ("amount", amt(*amount, "event.amount")?),
                ("currency", s(currency.code())),
                ("amount_paid", amt(*amount_paid, "event.amount_paid")?),
                ("balance_due", amt(*balance_due, "event.balance_due")?),
            ]),
        ),
        Event::InvoicePaid { invoice_id, total, paid_on } => (
            3,
            record(vec![
                ("invoice_id", s(invoice_id)),
                ("total", amt(*total, "event.total")?),
                ("paid_on", date(*paid_on)),
            ]),
        ),
        Event::InvoiceVoided { invoice_id, reason } => {
            (4, record(vec![("invoice_id", s(invoice_id)), ("reason", opt_s(reason))]))
        }
        Event::CommandRejected { command_type, invoice_id, code, message } => (
            5,
            record(vec![
                ("command_type", s(command_type)),
                ("invoice_id", opt_s(invoice_id)),
                ("code", s(code)),
                ("message", s(message)),
            ]),
        ),
    };
    Ok(record(vec![
        ("event_id", s(&e.event_id)),
        ("command_id", s(&e.command_id)),
        ("tenant_id", s(&e.tenant_id)),
        ("correlation_id", opt_s(&e.correlation_id)),
        ("occurred_at", Value::TimestampMillis(e.occurred_at_ms)),
        ("event", Value::Union(index, Box::new(body))),
    ]))
}

// ---------------------------------------------------------------- decoding helpers

/// The fields of one decoded record, taken by name, with the record's path for errors.
struct Rec<'p> {
    path: &'p str,
    fields: Vec<(String, Value)>,
}

impl<'p> Rec<'p> {
    fn new(path: &'p str, v: Value) -> Result<Self, SchemaError> {
        match v {
            Value::Record(fields) => Ok(Rec { path, fields }),
            other => Err(SchemaError::field(path, format!("expected a record, found {}", kind(&other)))),
        }
    }

    fn path(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_string() } else { format!("{}.{name}", self.path) }
    }

    fn take(&mut self, name: &str) -> Result<Value, SchemaError> {
        match self.fields.iter().position(|(k, _)| k == name) {
            Some(i) => Ok(std::mem::replace(&mut self.fields[i].1, Value::Null)),
            None => Err(SchemaError::field(self.path(name), "missing")),
        }
    }

    fn string(&mut self, name: &str) -> Result<String, SchemaError> {
        match unwrap_union(self.take(name)?) {
            Value::String(s) => Ok(s),
            other => Err(SchemaError::field(self.path(name), format!("expected a string, found {}", kind(&other)))),
        }
    }

    /// An optional field; absent (written before the field existed) reads as its default.
    fn opt_string(&mut self, name: &str) -> Result<Option<String>, SchemaError> {
        if !self.fields.iter().any(|(k, _)| k == name) {
            return Ok(None);
        }
        match unwrap_union(self.take(name)?) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(SchemaError::field(self.path(name), format!("expected a string or null, found {}", kind(&other)))),
        }
    }

    fn date(&mut self, name: &str) -> Result<Date, SchemaError> {
        match self.take(name)? {
            Value::Date(d) | Value::Int(d) => Ok(Date::from_days(d)),
            other => Err(SchemaError::field(self.path(name), format!("expected a date, found {}", kind(&other)))),
        }
    }

    fn millis(&mut self, name: &str) -> Result<i64, SchemaError> {
        match self.take(name)? {
            Value::TimestampMillis(t) | Value::Long(t) => Ok(t),
            Value::TimestampMicros(t) => Ok(t / 1000),
            other => Err(SchemaError::field(self.path(name), format!("expected a timestamp, found {}", kind(&other)))),
        }
    }

    fn int(&mut self, name: &str) -> Result<i32, SchemaError> {
        match self.take(name)? {
            Value::Int(i) => Ok(i),
            other => Err(SchemaError::field(self.path(name), format!("expected an int, found {}", kind(&other)))),
        }
    }

    fn currency(&mut self, name: &str) -> Result<Currency, SchemaError> {
        let raw = self.string(name)?;
        raw.parse().map_err(|e: crate::money::CurrencyParseError| SchemaError::field(self.path(name), e.to_string()))
    }

    fn decimal(&mut self, name: &str, scale: u32) -> Result<Decimal, SchemaError> {
        match self.take(name)? {
            Value::Decimal(d) => {
                let bytes = <Vec<u8>>::try_from(&d).map_err(|e| SchemaError::field(self.path(name), e.to_string()))?;
                decimal_from_bytes(&bytes, scale).ok_or_else(|| {
                    SchemaError::field(self.path(name), "decimal does not fit in 28 significant digits")
                })
            }
            Value::Bytes(bytes) => decimal_from_bytes(&bytes, scale)
                .ok_or_else(|| SchemaError::field(self.path(name), "decimal does not fit in 28 significant digits")),
            other => Err(SchemaError::field(self.path(name), format!("expected a decimal, found {}", kind(&other)))),
        }
    }
}

/// Two's-complement big-endian bytes (1 to 16 of them) as the number they write.
fn sign_extended(bytes: &[u8]) -> i128 {
    let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0x00 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    i128::from_be_bytes(buf)
}

pub(crate) fn decimal_from_bytes(bytes: &[u8], scale: u32) -> Option<Decimal> {
    if bytes.is_empty() || bytes.len() > 16 {
        return if bytes.is_empty() { Some(Decimal::new(0, scale)) } else { None };
    }
    let mantissa = sign_extended(bytes);
    // The wire's fixed scale is an encoding detail: hand out the canonical value (trailing
    // zeros stripped, as `normalize` does), in 64-bit arithmetic where the mantissa fits —
    // rust_decimal's 96-bit divisions were most of decoding a decimal.
    if let Ok(mut m) = i64::try_from(mantissa)
        && scale <= Decimal::MAX_SCALE
    {
        if m == 0 {
            return Some(Decimal::ZERO);
        }
        let mut s = scale;
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        return Some(Decimal::new(m, s));
    }
    Decimal::try_from_i128_with_scale(mantissa, scale).ok().map(|d| d.normalize())
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Record(_) => "record",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Union(..) => "union",
        Value::Decimal(_) => "decimal",
        _ => "another type",
    }
}

/// Reads a union branch as (record name index, record). The index is that of the reader
/// schema, since values are resolved to it before conversion.
fn branch(path: &str, v: Value) -> Result<(u32, Value), SchemaError> {
    match v {
        Value::Union(i, inner) => Ok((i, *inner)),
        other => Err(SchemaError::field(path, format!("expected a union, found {}", kind(&other)))),
    }
}

/// Converts a value resolved to this release's command schema into a command.
pub fn command_from_value(v: Value) -> Result<CommandEnvelope, SchemaError> {
    let mut r = Rec::new("", v)?;
    let (index, payload) = branch("payload", r.take("payload")?)?;
    let payload = match index {
        0 => {
            let mut p = Rec::new("payload", payload)?;
            let lines = match p.take("lines")? {
                Value::Array(items) => {
                    let mut lines = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        let path = format!("payload.lines[{i}]");
                        let mut l = Rec::new(&path, item)?;
                        lines.push(LineItem {
                            description: l.string("description")?,
                            quantity: l.decimal("quantity", PRICE_SCALE)?,
                            unit_price: l.decimal("unit_price", PRICE_SCALE)?,
                            tax_rate: l.decimal("tax_rate", RATE_SCALE)?,
                        });
                    }
                    lines
                }
                other => return Err(SchemaError::field("payload.lines", format!("expected an array, found {}", kind(&other)))),
            };
            let metadata = match p.take("metadata").unwrap_or(Value::Map(HashMap::new())) {
                Value::Map(m) => {
                    let mut out = BTreeMap::new();
                    for (k, v) in m {
                        match v {
                            Value::String(s) => {
                                out.insert(k, s);
                            }
                            other => return Err(SchemaError::field(format!("payload.metadata.{k}"), format!("expected a string, found {}", kind(&other)))),
                        }
                    }
                    out
                }
                other => return Err(SchemaError::field("payload.metadata", format!("expected a map, found {}", kind(&other)))),
            };
            CommandPayload::CreateInvoice(CreateInvoice {
                invoice_id: p.string("invoice_id")?,
                customer_id: p.string("customer_id")?,
                currency: p.currency("currency")?,
                issue_date: p.date("issue_date")?,
                due_date: p.date("due_date")?,
                lines,
                metadata,
            })
        }
        1 => CommandPayload::IssueInvoice { invoice_id: Rec::new("payload", payload)?.string("invoice_id")? },
        2 => {
            let mut p = Rec::new("payload", payload)?;
            CommandPayload::RecordPayment(RecordPayment {
                invoice_id: p.string("invoice_id")?,
                amount: p.decimal("amount", AMOUNT_SCALE)?,
                currency: p.currency("currency")?,
                method: p.string("method")?,
                external_reference: p.opt_string("external_reference")?,
                received_on: p.date("received_on")?,
            })
        }
        3 => {
            let mut p = Rec::new("payload", payload)?;
            CommandPayload::VoidInvoice { invoice_id: p.string("invoice_id")?, reason: p.opt_string("reason")? }
        }
        other => return Err(SchemaError::field("payload", format!("unknown command branch {other}"))),
    };
    Ok(CommandEnvelope {
        command_id: r.string("command_id")?,
        tenant_id: r.string("tenant_id")?,
        correlation_id: r.opt_string("correlation_id")?,
        issued_at_ms: r.millis("issued_at")?,
        idempotency_key: r.opt_string("idempotency_key")?,
        payload,
    })
}

/// Converts a value resolved to this release's event schema into an event.
pub fn event_from_value(v: Value) -> Result<EventEnvelope, SchemaError> {
    let mut r = Rec::new("", v)?;
    let (index, body) = branch("event", r.take("event")?)?;
    let mut b = Rec::new("event", body)?;
    let event = match index {
        0 => Event::InvoiceCreated {
            invoice_id: b.string("invoice_id")?,
            customer_id: b.string("customer_id")?,
            currency: b.currency("currency")?,
            issue_date: b.date("issue_date")?,
            due_date: b.date("due_date")?,
            line_count: b.int("line_count")?,
            subtotal: b.decimal("subtotal", AMOUNT_SCALE)?,
            tax: b.decimal("tax", AMOUNT_SCALE)?,
            total: b.decimal("total", AMOUNT_SCALE)?,
        },
        1 => Event::InvoiceIssued {
            invoice_id: b.string("invoice_id")?,
            due_date: b.date("due_date")?,
            total: b.decimal("total", AMOUNT_SCALE)?,
        },
        2 => Event::PaymentApplied {
            invoice_id: b.string("invoice_id")?,
            payment_id: b.string("payment_id")?,
            amount: b.decimal("amount", AMOUNT_SCALE)?,
            currency: b.currency("currency")?,
            amount_paid: b.decimal("amount_paid", AMOUNT_SCALE)?,
            balance_due: b.decimal("balance_due", AMOUNT_SCALE)?,
        },
        3 => Event::InvoicePaid {
            invoice_id: b.string("invoice_id")?,
            total: b.decimal("total", AMOUNT_SCALE)?,
            paid_on: b.date("paid_on")?,
        },
        4 => Event::InvoiceVoided { invoice_id: b.string("invoice_id")?, reason: b.opt_string("reason")? },
        5 => Event::CommandRejected {
            command_type: b.string("command_type")?,
            invoice_id: b.opt_string("invoice_id")?,
            code: b.string("code")?,
            message: b.string("message")?,
        },
        other => return Err(SchemaError::field("event", format!("unknown event branch {other}"))),
    };
    Ok(EventEnvelope {
        event_id: r.string("event_id")?,
        command_id: r.string("command_id")?,
        tenant_id: r.string("tenant_id")?,
        correlation_id: r.opt_string("correlation_id")?,
        occurred_at_ms: r.millis("occurred_at")?,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_round_trip() {
        for s in ["0", "1", "-1", "127.5", "-128", "1234.50", "-0.0001", "79228162514264.3375", "-99999999999.9999"] {
            let d: Decimal = s.parse().expect("literal");
            let v = dec(d, AMOUNT_SCALE, "x").expect("encodes");
            let Value::Decimal(a) = v else { panic!("not a decimal") };
            let bytes = <Vec<u8>>::try_from(&a).expect("bytes");
            assert_eq!(decimal_from_bytes(&bytes, AMOUNT_SCALE), Some(d), "{s}");
        }
        assert!(dec("0.00001".parse().expect("literal"), AMOUNT_SCALE, "amount").is_err());
    }

    /// Decimals of every width, scale and sign (xorshift, fixed seed), and the edges.
    fn decimals() -> Vec<Decimal> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = vec![Decimal::ZERO, -Decimal::ZERO, Decimal::MAX, Decimal::MIN, Decimal::new(0, 4), Decimal::new(-1, 28)];
        for i in 0..30_000u32 {
            let width = i % 4;
            let lo = if width == 0 { next() as u32 % 100_000 } else { next() as u32 };
            let mid = if width >= 2 { next() as u32 } else { 0 };
            let hi = if width == 3 { next() as u32 } else { 0 };
            out.push(Decimal::from_parts(lo, mid, hi, next() % 2 == 0, i % 29));
        }
        out
    }

    /// Every bit of a Decimal, scale and the sign of zero included (`==` ignores both).
    fn exact(d: Option<Decimal>) -> Option<[u8; 16]> {
        d.map(|d| d.serialize())
    }

    #[test]
    fn decimals_encode_as_through_rescale() {
        // What `decimal_bytes` computed before its fast path, for every value.
        let reference = |d: Decimal, scale: u32| -> Option<i128> {
            if d.scale() > scale && d.round_dp(scale) != d {
                return None;
            }
            let mut x = d;
            x.rescale(scale);
            (x.scale() == scale && x == d).then(|| x.mantissa())
        };
        for d in decimals() {
            for scale in [0, 2, AMOUNT_SCALE, PRICE_SCALE, 28] {
                let got = crate::binary::decimal_bytes(d, scale, "x").ok().map(|(b, start)| sign_extended(&b[start..]));
                assert_eq!(got, reference(d, scale), "{d:?} at scale {scale}");
            }
        }
    }

    #[test]
    fn decimals_decode_as_through_normalize() {
        for d in decimals() {
            let m = d.mantissa().to_be_bytes();
            for len in [1, 2, 5, 8, 9, 12, 16] {
                let bytes = &m[16 - len..];
                for scale in [0, AMOUNT_SCALE, PRICE_SCALE, 28] {
                    let reference = Decimal::try_from_i128_with_scale(sign_extended(bytes), scale).ok().map(|d| d.normalize());
                    assert_eq!(exact(decimal_from_bytes(bytes, scale)), exact(reference), "{bytes:?} at scale {scale}");
                }
            }
        }
    }

    #[test]
    fn frames() {
        let f = frame(7, b"abc");
        assert_eq!(unframe(&f).expect("framed"), (7, &b"abc"[..]));
        assert!(matches!(unframe(b"\x01\0\0\0\x07abc"), Err(SchemaError::Framing(_))));
        assert!(matches!(unframe(b"\0\0"), Err(SchemaError::Framing(_))));
    }
}
