//! Request bodies and their validation into command payloads.
//!
//! Parsing (400, `invalid_json`) and rules (422, `invalid_field`) both name the field at
//! fault by its JSON path. Amounts are decimal strings ("1234.50"); integers are accepted,
//! JSON numbers with a fraction are refused (they are floats on most clients).

use crate::error::ApiError;
use billstream_processors::domain::ids;
use billstream_schemas::codec::{PRICE_SCALE, RATE_SCALE};
use billstream_schemas::command::{CommandPayload, CreateInvoice, LineItem, RecordPayment};
use billstream_schemas::{Currency, Date};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Deref;

/// Longest accepted free-text field (descriptions, reasons, metadata values).
const MAX_TEXT: usize = 500;
/// Most lines on one invoice.
pub const MAX_LINES: usize = 1000;
/// Most metadata entries on one invoice.
const MAX_METADATA: usize = 50;

/// Parses JSON into `T`, naming the field at fault on error.
pub fn parse<'de, T: Deserialize<'de>>(bytes: &'de [u8], prefix: &str) -> Result<T, ApiError> {
    // Fast path without path tracking; only a body that fails is parsed again to say where.
    if let Some(v) = parse_fast(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = join(prefix, if path == "." { "" } else { &path });
        ApiError::bad_json(Some(field), e.inner().to_string())
    })
}

/// Parses JSON into `T` without naming the field at fault. The body's UTF-8 is checked once,
/// as a whole: serde_json reading bytes checks each string on its own, which was 5 % of the
/// gateway thread's samples under batch load.
fn parse_fast<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (false, true) => prefix.trim_end_matches('.').to_string(),
        (false, false) => format!("{prefix}{field}"),
    }
}

/// A decimal from a JSON string or integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecimalInput(pub Decimal);

impl<'de> Deserialize<'de> for DecimalInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DecimalInput;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal string such as \"12.50\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DecimalInput, E> {
                let valid = !s.is_empty()
                    && s.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
                match s.parse::<Decimal>() {
                    Ok(v) if valid => Ok(DecimalInput(v)),
                    _ => Err(E::custom(format!("expected a decimal string such as \"12.50\", got {s:?}"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecimalInput, E> {
                Ok(DecimalInput(Decimal::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecimalInput, E> {
                Ok(DecimalInput(Decimal::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DecimalInput, E> {
                Err(E::custom(format!(
                    "got the JSON number {v}; send amounts as decimal strings such as \"12.50\" so no float rounding happens"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A text field that is only read (a currency code, a date), borrowed from the body unless
/// it holds JSON escapes: no copy of its own for each command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Body of `POST /v1/invoices` (and of a `create_invoice` batch item).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceBody<'a> {
    /// Optional client-chosen id: letters, digits, `.`, `_`, `-`, `:`; 1 to 64 characters.
    pub invoice_id: Option<String>,
    /// Customer id.
    pub customer_id: String,
    /// ISO 4217 code.
    #[serde(borrow)]
    pub currency: Text<'a>,
    /// YYYY-MM-DD.
    #[serde(borrow)]
    pub issue_date: Text<'a>,
    /// YYYY-MM-DD, on or after issue_date.
    #[serde(borrow)]
    pub due_date: Text<'a>,
    /// 1 to 1000 lines.
    pub lines: Vec<LineBody>,
    /// Free-form string map (at most 50 entries).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Alternative to the Idempotency-Key header.
    pub idempotency_key: Option<String>,
}

/// One line of a create request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// What is billed.
    pub description: String,
    /// Positive, at most 6 decimal places.
    pub quantity: DecimalInput,
    /// Zero or more, at most 6 decimal places.
    pub unit_price: DecimalInput,
    /// Percent, 0 to 100, at most 4 decimal places; default 0.
    pub tax_rate: Option<DecimalInput>,
}

/// Body of `POST /v1/invoices/{id}/payments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody<'a> {
    /// Positive, in whole minor units of the currency.
    pub amount: DecimalInput,
    /// Must match the invoice's currency.
    #[serde(borrow)]
    pub currency: Text<'a>,
    /// e.g. `card`, `bank_transfer`.
    pub method: String,
    /// Provider reference.
    pub external_reference: Option<String>,
    /// YYYY-MM-DD; default today (UTC).
    #[serde(borrow)]
    pub received_on: Option<Text<'a>>,
    /// Alternative to the Idempotency-Key header.
    pub idempotency_key: Option<String>,
}

/// Body of `POST /v1/invoices/{id}/void` (optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidBody {
    /// Why, for the audit log.
    pub reason: Option<String>,
    /// Alternative to the Idempotency-Key header.
    pub idempotency_key: Option<String>,
}

/// Body of `POST /v1/invoices/{id}/issue` (optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// Alternative to the Idempotency-Key header.
    pub idempotency_key: Option<String>,
}

/// Which command a batch item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// As `POST /v1/invoices`.
    CreateInvoice,
    /// As `POST /v1/invoices/{id}/issue`.
    IssueInvoice,
    /// As `POST /v1/invoices/{id}/payments`; `idempotency_key` is required.
    RecordPayment,
    /// As `POST /v1/invoices/{id}/void`.
    VoidInvoice,
}

/// One item of `POST /v1/commands:batch`: `type` plus the fields of that command's body
/// (and `invoice_id`). Flat rather than an internally tagged enum: serde buffers a tagged
/// enum's whole content before reading it, which was a tenth of the gateway's CPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItem<'a> {
    /// The command.
    #[serde(rename = "type")]
    pub kind: BatchKind,
    /// The invoice (optional for create).
    pub invoice_id: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// create: customer.
    pub customer_id: Option<String>,
    /// create and payment: ISO 4217 code.
    #[serde(borrow)]
    pub currency: Option<Text<'a>>,
    /// create: YYYY-MM-DD.
    #[serde(borrow)]
    pub issue_date: Option<Text<'a>>,
    /// create: YYYY-MM-DD.
    #[serde(borrow)]
    pub due_date: Option<Text<'a>>,
    /// create: lines.
    pub lines: Option<Vec<LineBody>>,
    /// create: metadata.
    pub metadata: Option<BTreeMap<String, String>>,
    /// payment: amount.
    pub amount: Option<DecimalInput>,
    /// payment: method.
    pub method: Option<String>,
    /// payment: provider reference.
    pub external_reference: Option<String>,
    /// payment: day received.
    #[serde(borrow)]
    pub received_on: Option<Text<'a>>,
    /// void: reason.
    pub reason: Option<String>,
}

/// Body of `POST /v1/commands:batch`, its items kept as text, so that each can be parsed on
/// its own and one bad item does not sink the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(borrow)]
    commands: Vec<&'a serde_json::value::RawValue>,
}

/// The same body with every item parsed in the same pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParsedBatchBody<'a> {
    #[serde(borrow)]
    commands: Vec<BatchItem<'a>>,
}

/// The items of a batch body, in order: each parsed, or the error naming its field
/// (`commands[3].amount`). An error for the body as a whole (not JSON, no `commands`) is
/// the outer one.
pub fn batch_items(bytes: &[u8]) -> Result<Vec<Result<BatchItem<'_>, ApiError>>, ApiError> {
    // One pass when every item parses, as in nearly every batch: scanning the body for its
    // items first and parsing each afterwards was 7 % of the gateway thread. Otherwise each
    // item on its own.
    if let Some(body) = parse_fast::<ParsedBatchBody<'_>>(bytes) {
        return Ok(body.commands.into_iter().map(Ok).collect());
    }
    let body: BatchBody<'_> = parse(bytes, "")?;
    let mut prefix = String::with_capacity(24);
    Ok(body.commands.iter().enumerate().map(|(i, raw)| parse::<BatchItem>(raw.get().as_bytes(), item_prefix(&mut prefix, i))).collect())
}

/// Writes into `buf` what error paths put before a batch item's fields (`commands[3].`), and
/// returns it: one buffer for a whole batch.
pub fn item_prefix(buf: &mut String, i: usize) -> &str {
    buf.clear();
    let _ = write!(buf, "commands[{i}].");
    buf
}

/// A validated command, ready to be given an id and published.
#[derive(Debug, Clone)]
pub struct Valid {
    /// What to do (for create, `invoice_id` may still be empty: derived from the command id).
    pub payload: CommandPayload,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
}

/// Checks an invoice id chosen by a client.
pub fn check_invoice_id(field: &str, id: &str) -> Result<(), ApiError> {
    check_invoice_id_at(|| field.to_string(), id)
}

/// Field paths are built only when there is an error to report: valid input allocates none.
fn check_invoice_id_at(field: impl Fn() -> String, id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(field(), format!("invoice id must be 1 to 64 letters, digits, '.', '_', '-' or ':'; got {id:?}")))
    }
}

fn check_text(field: impl Fn() -> String, v: &str, min: usize, max: usize) -> Result<(), ApiError> {
    if v.len() < min || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field(), format!("must be {min} to {max} bytes of text without control characters")));
    }
    Ok(())
}

fn check_key(prefix: &str, key: &Option<String>) -> Result<(), ApiError> {
    if let Some(k) = key {
        check_text(|| join(prefix, "idempotency_key"), k, 1, 255)?;
    }
    Ok(())
}

fn currency(field: impl Fn() -> String, v: &str) -> Result<Currency, ApiError> {
    v.parse().map_err(|e: billstream_schemas::money::CurrencyParseError| ApiError::invalid(field(), e.to_string()))
}

fn date(field: impl Fn() -> String, v: &str) -> Result<Date, ApiError> {
    v.parse().map_err(|e: billstream_schemas::date::DateParseError| ApiError::invalid(field(), e.to_string()))
}

fn places(field: impl Fn() -> String, v: Decimal, max: u32) -> Result<Decimal, ApiError> {
    let n = v.normalize();
    if n.scale() > max {
        return Err(ApiError::invalid(field(), format!("at most {max} decimal places, got {v}")));
    }
    if n.abs() >= Decimal::from(10_i64.pow(15)) {
        return Err(ApiError::invalid(field(), format!("{v} is larger than the largest supported value (10^15)")));
    }
    Ok(n)
}

/// Validates a create body. `prefix` is prepended to field paths (`commands[3].`).
pub fn create(prefix: &str, b: CreateInvoiceBody<'_>) -> Result<Valid, ApiError> {
    let f = |name: &str| join(prefix, name);
    check_key(prefix, &b.idempotency_key)?;
    if let Some(id) = &b.invoice_id {
        check_invoice_id_at(|| f("invoice_id"), id)?;
    }
    check_text(|| f("customer_id"), &b.customer_id, 1, 128)?;
    let cur = currency(|| f("currency"), &b.currency)?;
    let issue = date(|| f("issue_date"), &b.issue_date)?;
    let due = date(|| f("due_date"), &b.due_date)?;
    if due < issue {
        return Err(ApiError::invalid(f("due_date"), format!("due_date {due} is before issue_date {issue}")));
    }
    if b.lines.is_empty() || b.lines.len() > MAX_LINES {
        return Err(ApiError::invalid(f("lines"), format!("an invoice needs 1 to {MAX_LINES} lines, got {}", b.lines.len())));
    }
    let mut lines = Vec::with_capacity(b.lines.len());
    for (i, l) in b.lines.into_iter().enumerate() {
        let lf = |name: &str| f(&format!("lines[{i}].{name}"));
        check_text(|| lf("description"), &l.description, 1, MAX_TEXT)?;
        let quantity = places(|| lf("quantity"), l.quantity.0, PRICE_SCALE)?;
        if quantity <= Decimal::ZERO {
            return Err(ApiError::invalid(lf("quantity"), format!("must be positive, got {quantity}")));
        }
        let unit_price = places(|| lf("unit_price"), l.unit_price.0, PRICE_SCALE)?;
        if unit_price < Decimal::ZERO {
            return Err(ApiError::invalid(lf("unit_price"), format!("must not be negative, got {unit_price}")));
        }
        let tax_rate = places(|| lf("tax_rate"), l.tax_rate.map_or(Decimal::ZERO, |t| t.0), RATE_SCALE)?;
        if tax_rate < Decimal::ZERO || tax_rate > Decimal::ONE_HUNDRED {
            return Err(ApiError::invalid(lf("tax_rate"), format!("must be a percentage from 0 to 100, got {tax_rate}")));
        }
        lines.push(LineItem { description: l.description, quantity, unit_price, tax_rate });
    }
    if b.metadata.len() > MAX_METADATA {
        return Err(ApiError::invalid(f("metadata"), format!("at most {MAX_METADATA} entries")));
    }
    for (k, v) in &b.metadata {
        check_text(|| f(&format!("metadata.{k}")), k, 1, 40)?;
        check_text(|| f(&format!("metadata.{k}")), v, 0, MAX_TEXT)?;
    }
    Ok(Valid {
        payload: CommandPayload::CreateInvoice(CreateInvoice {
            invoice_id: b.invoice_id.unwrap_or_default(),
            customer_id: b.customer_id,
            currency: cur,
            issue_date: issue,
            due_date: due,
            lines,
            metadata: b.metadata,
        }),
        idempotency_key: b.idempotency_key,
    })
}

/// Validates a payment body for an invoice. A payment without an idempotency key is refused:
/// a retried payment must never be applied twice.
pub fn payment(prefix: &str, invoice_id: String, b: PaymentBody<'_>, today: Date) -> Result<Valid, ApiError> {
    let f = |name: &str| join(prefix, name);
    check_invoice_id_at(|| f("invoice_id"), &invoice_id)?;
    match &b.idempotency_key {
        None => {
            return Err(ApiError {
                status: 422,
                code: "idempotency_key_required".into(),
                message: "payments need an Idempotency-Key header (or idempotency_key field in a batch item) so a retry is never applied twice".into(),
                field: Some(f("idempotency_key")),
            });
        }
        Some(_) => check_key(prefix, &b.idempotency_key)?,
    }
    let cur = currency(|| f("currency"), &b.currency)?;
    let amount = places(|| f("amount"), b.amount.0, cur.minor_units())?;
    if amount <= Decimal::ZERO {
        return Err(ApiError::invalid(f("amount"), format!("must be positive, got {amount}")));
    }
    check_text(|| f("method"), &b.method, 1, 32)?;
    if let Some(r) = &b.external_reference {
        check_text(|| f("external_reference"), r, 1, 128)?;
    }
    let received_on = match &b.received_on {
        Some(d) => date(|| f("received_on"), d)?,
        None => today,
    };
    Ok(Valid {
        payload: CommandPayload::RecordPayment(RecordPayment {
            invoice_id,
            amount,
            currency: cur,
            method: b.method,
            external_reference: b.external_reference,
            received_on,
        }),
        idempotency_key: b.idempotency_key,
    })
}

/// Validates an issue request.
pub fn issue(prefix: &str, invoice_id: String, idempotency_key: Option<String>) -> Result<Valid, ApiError> {
    check_invoice_id_at(|| join(prefix, "invoice_id"), &invoice_id)?;
    check_key(prefix, &idempotency_key)?;
    Ok(Valid { payload: CommandPayload::IssueInvoice { invoice_id }, idempotency_key })
}

/// Validates a void request.
pub fn void(prefix: &str, invoice_id: String, reason: Option<String>, idempotency_key: Option<String>) -> Result<Valid, ApiError> {
    check_invoice_id_at(|| join(prefix, "invoice_id"), &invoice_id)?;
    check_key(prefix, &idempotency_key)?;
    if let Some(r) = &reason {
        check_text(|| join(prefix, "reason"), r, 0, MAX_TEXT)?;
    }
    Ok(Valid { payload: CommandPayload::VoidInvoice { invoice_id, reason }, idempotency_key })
}

fn required<T>(prefix: &str, name: &str, v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::bad_json(Some(join(prefix, name)), format!("missing field `{name}`")))
}

/// Validates one batch item.
pub fn batch_item(prefix: &str, item: BatchItem<'_>, today: Date) -> Result<Valid, ApiError> {
    let kind = item.kind;
    let stray: [(&str, bool); 10] = [
        ("customer_id", item.customer_id.is_some()),
        ("issue_date", item.issue_date.is_some()),
        ("due_date", item.due_date.is_some()),
        ("lines", item.lines.is_some()),
        ("metadata", item.metadata.is_some()),
        ("amount", item.amount.is_some()),
        ("method", item.method.is_some()),
        ("external_reference", item.external_reference.is_some()),
        ("received_on", item.received_on.is_some()),
        ("reason", item.reason.is_some()),
    ];
    let allowed: &[&str] = match kind {
        BatchKind::CreateInvoice => &["customer_id", "issue_date", "due_date", "lines", "metadata"],
        BatchKind::IssueInvoice => &[],
        BatchKind::RecordPayment => &["amount", "method", "external_reference", "received_on"],
        BatchKind::VoidInvoice => &["reason"],
    };
    if let Some((name, _)) = stray.iter().find(|(name, present)| *present && !allowed.contains(name)) {
        return Err(ApiError::bad_json(Some(join(prefix, name)), format!("field `{name}` does not belong to a {kind:?} command")));
    }
    if item.currency.is_some() && !matches!(kind, BatchKind::CreateInvoice | BatchKind::RecordPayment) {
        return Err(ApiError::bad_json(Some(join(prefix, "currency")), format!("field `currency` does not belong to a {kind:?} command")));
    }
    match kind {
        BatchKind::CreateInvoice => create(
            prefix,
            CreateInvoiceBody {
                invoice_id: item.invoice_id,
                customer_id: required(prefix, "customer_id", item.customer_id)?,
                currency: required(prefix, "currency", item.currency)?,
                issue_date: required(prefix, "issue_date", item.issue_date)?,
                due_date: required(prefix, "due_date", item.due_date)?,
                lines: required(prefix, "lines", item.lines)?,
                metadata: item.metadata.unwrap_or_default(),
                idempotency_key: item.idempotency_key,
            },
        ),
        BatchKind::IssueInvoice => issue(prefix, required(prefix, "invoice_id", item.invoice_id)?, item.idempotency_key),
        BatchKind::RecordPayment => {
            let invoice_id = required(prefix, "invoice_id", item.invoice_id)?;
            let body = PaymentBody {
                amount: required(prefix, "amount", item.amount)?,
                currency: required(prefix, "currency", item.currency)?,
                method: required(prefix, "method", item.method)?,
                external_reference: item.external_reference,
                received_on: item.received_on,
                idempotency_key: item.idempotency_key,
            };
            payment(prefix, invoice_id, body, today)
        }
        BatchKind::VoidInvoice => void(prefix, required(prefix, "invoice_id", item.invoice_id)?, item.reason, item.idempotency_key),
    }
}

/// The command id: derived from the idempotency key when there is one (so a retry is the
/// same command), random otherwise. For a create without a client-chosen invoice id, the
/// invoice id is derived from the command id.
pub fn assign_ids(tenant_id: &str, v: &mut Valid) -> String {
    let command_id = match &v.idempotency_key {
        Some(k) => ids::command_id_for_key(tenant_id, k),
        None => ids::random_command_id(),
    };
    if let CommandPayload::CreateInvoice(c) = &mut v.payload
        && c.invoice_id.is_empty() {
            c.invoice_id = ids::invoice_id_for(&command_id);
        }
    command_id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<Valid, ApiError> {
        create("", parse::<CreateInvoiceBody>(json.as_bytes(), "")?)
    }

    const OK: &str = r#"{"customer_id":"c","currency":"EUR","issue_date":"2026-01-01","due_date":"2026-02-01",
        "lines":[{"description":"x","quantity":2,"unit_price":"9.99","tax_rate":"19"}]}"#;

    #[test]
    fn valid_create() {
        let v = body(OK).expect("valid");
        let CommandPayload::CreateInvoice(c) = v.payload else { panic!("not a create") };
        assert_eq!(c.lines[0].unit_price, "9.99".parse::<Decimal>().expect("literal"));
    }

    #[test]
    fn read_only_text_is_borrowed_unless_escaped() {
        let b: CreateInvoiceBody<'_> = parse(OK.as_bytes(), "").expect("parses");
        assert!(matches!(b.currency.0, Cow::Borrowed("EUR")), "{:?}", b.currency);
        // JSON escapes are decoded into text of its own, and read the same.
        let escaped = OK.replace("EUR", r"\u0045UR").replace("2026-01-01", r"2026\u002d01-01");
        let b: CreateInvoiceBody<'_> = parse(escaped.as_bytes(), "").expect("parses");
        assert!(matches!(&b.currency.0, Cow::Owned(c) if c == "EUR"), "{:?}", b.currency);
        let CommandPayload::CreateInvoice(c) = create("", b).expect("valid").payload else { panic!("not a create") };
        assert_eq!((c.currency.code(), c.issue_date.to_string()), ("EUR", "2026-01-01".to_string()));
        // Not UTF-8: refused as JSON, not read.
        let e = parse::<CreateInvoiceBody<'_>>(&[b'"', 0xff, b'"'], "").expect_err("not UTF-8");
        assert_eq!(e.status, 400);
        let e = batch_items(b"{\"commands\":[\"\xff\"]}").expect_err("not UTF-8");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn errors_name_the_field() {
        let e = body(&OK.replace(r#""9.99""#, "9.99")).expect_err("float");
        assert_eq!((e.status, e.field.as_deref()), (400, Some("lines[0].unit_price")));
        assert!(e.message.contains("decimal strings"), "{}", e.message);
        let e = body(&OK.replace("EUR", "EURO")).expect_err("currency");
        assert_eq!((e.status, e.field.as_deref()), (422, Some("currency")));
        let e = body(&OK.replace("2026-02-01", "2025-02-01")).expect_err("due before issue");
        assert_eq!(e.field.as_deref(), Some("due_date"));
        let e = body(&OK.replace(r#""19""#, r#""101""#)).expect_err("rate");
        assert_eq!(e.field.as_deref(), Some("lines[0].tax_rate"));
        let e = body(&OK.replace(r#""9.99""#, r#""9.9999999""#)).expect_err("places");
        assert_eq!(e.field.as_deref(), Some("lines[0].unit_price"));
        let e = body(&OK.replace(r#""customer_id""#, r#""colour":1,"customer_id""#)).expect_err("unknown field");
        assert_eq!(e.status, 400);
        let e = body(&OK.replace(r#""9.99""#, r#""1e3""#)).expect_err("exponent");
        assert_eq!(e.field.as_deref(), Some("lines[0].unit_price"));
    }

    #[test]
    fn batch_items_are_checked_per_type() {
        let today = Date::from_days(20_000);
        let item = |json: &str| parse::<BatchItem>(json.as_bytes(), "commands[1].").and_then(|i| batch_item("commands[1].", i, today));
        let e = item(r#"{"type":"issue_invoice"}"#).expect_err("no invoice");
        assert_eq!((e.status, e.field.as_deref()), (400, Some("commands[1].invoice_id")));
        let e = item(r#"{"type":"issue_invoice","invoice_id":"i","amount":"1"}"#).expect_err("stray field");
        assert_eq!(e.field.as_deref(), Some("commands[1].amount"));
        let e = item(r#"{"type":"teleport","invoice_id":"i"}"#).expect_err("unknown type");
        assert_eq!((e.code.as_str(), e.field.as_deref()), ("invalid_json", Some("commands[1].type")));
        let e = item(r#"{"type":"record_payment","invoice_id":"i","amount":"1","currency":"EUR","method":"card","colour":1}"#).expect_err("unknown field");
        assert_eq!(e.status, 400);
        assert!(item(r#"{"type":"void_invoice","invoice_id":"i","reason":"r"}"#).is_ok());
        assert!(item(&format!(r#"{{"type":"create_invoice",{}"#, &OK[1..])).is_ok());
    }

    #[test]
    fn batch_bodies_parse_alike_in_one_pass_or_item_by_item() {
        let items = [
            r#"{"type":"issue_invoice","invoice_id":"i"}"#.to_string(),
            format!(r#"{{"type":"create_invoice",{}"#, &OK[1..]),
            r#"{"type":"record_payment","invoice_id":"i","amount":"1.50","currency":"EUR","method":"card","idempotency_key":"k"}"#.to_string(),
        ];
        let body = |items: &[String]| format!(r#"{{"commands":[{}]}}"#, items.join(","));
        let debug = |r: &Result<BatchItem, ApiError>| format!("{r:?}");
        let one_pass: Vec<String> = batch_items(body(&items).as_bytes()).expect("body").iter().map(debug).collect();
        let by_item: Vec<String> =
            items.iter().enumerate().map(|(i, j)| debug(&parse::<BatchItem>(j.as_bytes(), &format!("commands[{i}].")))).collect();
        assert_eq!(one_pass, by_item);
        assert!(one_pass.iter().all(|r| r.starts_with("Ok(")), "{one_pass:?}");

        // One bad item: the others still parse, and the error names the bad one's field.
        let mut bad = items.to_vec();
        bad.insert(1, r#"{"type":"issue_invoice","invoice_id":7}"#.to_string());
        let bad_body = body(&bad);
        let parsed = batch_items(bad_body.as_bytes()).expect("body");
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed.iter().filter(|r| r.is_ok()).count(), 3);
        let e = parsed[1].as_ref().expect_err("a number for an id");
        assert_eq!((e.code.as_str(), e.field.as_deref()), ("invalid_json", Some("commands[1].invoice_id")));

        // Faults of the body as a whole.
        assert!(batch_items(b"[]").is_err());
        assert!(batch_items(br#"{"commands":[],"colour":1}"#).is_err());
        assert!(batch_items(br#"{"commands":[{"type":"issue_invoice"},"#).is_err());
    }

    #[test]
    fn payments_need_a_key_and_whole_minor_units() {
        let today = Date::from_days(20_000);
        let p = |json: &str| payment("commands[2].", "inv-1".into(), parse::<PaymentBody>(json.as_bytes(), "commands[2].")?, today);
        let e = p(r#"{"amount":"1.00","currency":"EUR","method":"card"}"#).expect_err("no key");
        assert_eq!((e.code.as_str(), e.field.as_deref()), ("idempotency_key_required", Some("commands[2].idempotency_key")));
        let e = p(r#"{"amount":"1.5","currency":"JPY","method":"card","idempotency_key":"k"}"#).expect_err("yen cents");
        assert_eq!(e.field.as_deref(), Some("commands[2].amount"));
        let v = p(r#"{"amount":"1.5","currency":"EUR","method":"card","idempotency_key":"k"}"#).expect("valid");
        let CommandPayload::RecordPayment(r) = v.payload else { panic!("not a payment") };
        assert_eq!(r.received_on, today);
    }

    #[test]
    fn idempotency_key_fixes_the_ids() {
        let mut a = body(&OK.replace(r#""customer_id""#, r#""idempotency_key":"k1","customer_id""#)).expect("valid");
        let mut b = a.clone();
        assert_eq!(assign_ids("t", &mut a), assign_ids("t", &mut b));
        assert_eq!(a.payload.invoice_id(), b.payload.invoice_id());
        let mut c = a.clone();
        c.idempotency_key = None;
        if let CommandPayload::CreateInvoice(ci) = &mut c.payload {
            ci.invoice_id.clear();
        }
        let mut d = c.clone();
        assert_ne!(assign_ids("t", &mut c), assign_ids("t", &mut d));
    }
}
