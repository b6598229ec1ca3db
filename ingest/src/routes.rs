//! The HTTP handlers.

use crate::auth::API_KEY_HEADER;
use crate::error::ApiError;
use crate::openapi;
use crate::producer::OutgoingCommand;
use crate::request::{self, CreateInvoiceBody, IssueBody, PaymentBody, Valid, VoidBody};
use crate::server::Gateway;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use billstream_processors::domain::{Invoice, InvoiceStatus};
use billstream_processors::store::{CommandState, CommandStatus, Tenant};
use billstream_schemas::topics::partition_key;
use billstream_schemas::{CommandHead, Date, SchemaError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Gw = State<Arc<Gateway>>;

const CORRELATION_HEADER: &str = "x-correlation-id";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn tenant(gw: &Gateway, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let key = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing X-Api-Key header"))?;
    gw.keys.tenant(gw.store.as_ref(), key).await?.ok_or_else(|| ApiError::unauthorized("unknown API key"))
}

fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.to_string())),
            _ => Err(ApiError::new(400, "invalid_header", format!("{name} must be 1 to 255 visible ASCII characters"))),
        },
    }
}

fn correlation(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(header(headers, CORRELATION_HEADER)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
}

async fn read_body(gw: &Gateway, body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, gw.config.max_body_bytes).await.map_err(|_| {
        ApiError::new(413, "payload_too_large", format!("request body exceeds {} bytes", gw.config.max_body_bytes))
    })
}

fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { request::parse(bytes, "") }
}

fn encode_error(prefix: &str, e: SchemaError) -> ApiError {
    match e {
        SchemaError::Encode { field, message } => ApiError::invalid(format!("{prefix}{field}"), message),
        other => ApiError::new(500, "internal", other.to_string()),
    }
}

/// Query parameters of write endpoints.
#[derive(Debug, Deserialize, Default)]
pub struct WriteParams {
    /// `applied`: block until the processors applied or rejected the command.
    pub wait: Option<String>,
}

impl WriteParams {
    fn wait(&self) -> Result<bool, ApiError> {
        match self.wait.as_deref() {
            None => Ok(false),
            Some("applied") => Ok(true),
            Some(other) => Err(ApiError::invalid("wait", format!("wait must be \"applied\", got {other:?}"))),
        }
    }
}

/// The batch endpoint's answer.
#[derive(Serialize)]
struct BatchResponse<'a> {
    accepted: usize,
    rejected: usize,
    results: Vec<ItemResult<'a>>,
}

/// One item of a batch's answer, in request order.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemResult<'a> {
    /// Valid, not yet sent (replaced before the answer is written).
    Pending,
    Accepted { status: &'static str, command_id: &'a str, invoice_id: &'a str },
    Rejected { status: &'static str, error: ApiError },
    /// With `?wait=applied`: the command's status.
    Json(Value),
}

/// A validated command turned into an envelope and its outgoing record.
struct Prepared {
    command_id: String,
    invoice_id: String,
    out: OutgoingCommand,
}

fn prepare(gw: &Gateway, t: &Tenant, mut v: Valid, corr: &str, issued_at_ms: i64, prefix: &str) -> Result<Prepared, ApiError> {
    let command_id = request::assign_ids(&t.tenant_id, &mut v);
    // Encoded from borrowed fields: an envelope would copy the tenant, command and
    // correlation ids for each command.
    let head = CommandHead {
        command_id: &command_id,
        tenant_id: &t.tenant_id,
        correlation_id: Some(corr),
        issued_at_ms,
        idempotency_key: v.idempotency_key.as_deref(),
    };
    let payload = gw.catalog.encode_command_parts(&head, &v.payload).map_err(|e| encode_error(prefix, e))?;
    let invoice_id = v.payload.into_invoice_id();
    let key = partition_key(&t.tenant_id, t.buckets, &invoice_id);
    Ok(Prepared { command_id, invoice_id, out: OutgoingCommand { key, payload, timestamp_ms: issued_at_ms } })
}

/// Refuses a write of `bytes` while the processors are too far behind.
fn admit(gw: &Gateway, bytes: u64) -> Result<(), ApiError> {
    gw.backlog.as_ref().map_or(Ok(()), |b| b.admit(bytes))
}

fn record_produced(gw: &Gateway, bytes: u64) {
    if let Some(b) = &gw.backlog {
        b.produced.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

fn status_json(command_id: &str, status: Option<&CommandStatus>) -> Value {
    match status {
        None => json!({"command_id": command_id, "status": "pending"}),
        Some(s) => {
            let mut v = json!({
                "command_id": command_id,
                "command_type": s.command_type,
                "invoice_id": s.invoice_id,
                "status": match s.state { CommandState::Applied => "applied", CommandState::Rejected { .. } => "rejected" },
            });
            if let CommandState::Rejected { code, message } = &s.state {
                v["reason"] = json!({"code": code, "message": message});
            }
            v
        }
    }
}

/// Waits until each command is resolved or the deadline passes; `None` for still pending.
async fn wait_for(gw: &Gateway, tenant_id: &str, ids: &[&str]) -> Result<Vec<Option<CommandStatus>>, ApiError> {
    let deadline = Instant::now() + gw.config.wait_timeout;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut rx = gw.hub.as_ref().map(|h| h.subscribe(id));
        let mut status = gw.store.get_command(tenant_id, id).await?;
        if status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.take() {
                Some(rx) => {
                    let _ = tokio::time::timeout(left, rx).await;
                    status = gw.store.get_command(tenant_id, id).await?;
                }
                None => {
                    while status.is_none() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        status = gw.store.get_command(tenant_id, id).await?;
                    }
                }
            }
        }
        // Drop our interest whichever way it ended, or the hub would keep it forever.
        drop(rx);
        if let Some(h) = &gw.hub {
            h.unsubscribe(id);
        }
        out.push(status);
    }
    Ok(out)
}

async fn submit(gw: &Gateway, headers: &HeaderMap, params: &WriteParams, t: &Tenant, v: Result<Valid, ApiError>) -> Result<Response, ApiError> {
    let wait = params.wait()?;
    let corr = correlation(headers)?;
    let v = v.inspect_err(|_| gw.metrics.commands.with_label_values(&["invalid"]).inc())?;
    let p = prepare(gw, t, v, &corr, now_ms(), "")?;
    admit(gw, p.out.payload.len() as u64)?;
    let sent = gw.producer.send_all(std::slice::from_ref(&p.out), &corr).await;
    if let Some(Err(e)) = sent.into_iter().next() {
        return Err(ApiError::unavailable(format!("the broker did not acknowledge the command: {e}")));
    }
    record_produced(gw, p.out.payload.len() as u64);
    gw.metrics.commands.with_label_values(&["accepted"]).inc();
    let (status, body) = if wait {
        let st = wait_for(gw, &t.tenant_id, &[p.command_id.as_str()]).await?;
        let mut body = status_json(&p.command_id, st[0].as_ref());
        body["invoice_id"] = json!(p.invoice_id);
        (if st[0].is_some() { StatusCode::OK } else { StatusCode::ACCEPTED }, body)
    } else {
        (StatusCode::ACCEPTED, json!({"command_id": p.command_id, "invoice_id": p.invoice_id, "status": "accepted"}))
    };
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&corr) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    Ok(resp)
}

fn with_header_key(headers: &HeaderMap, body_key: Option<String>) -> Result<Option<String>, ApiError> {
    Ok(header(headers, IDEMPOTENCY_HEADER)?.or(body_key))
}

/// `POST /v1/invoices`.
pub async fn create_invoice(State(gw): Gw, Query(params): Query<WriteParams>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let bytes = read_body(&gw, body).await?;
    let v = request::parse::<CreateInvoiceBody>(&bytes, "").and_then(|mut b| {
        b.idempotency_key = with_header_key(&headers, b.idempotency_key.take())?;
        request::create("", b)
    });
    submit(&gw, &headers, &params, &t, v).await
}

/// `POST /v1/invoices/{id}/issue`.
pub async fn issue_invoice(State(gw): Gw, Path(id): Path<String>, Query(params): Query<WriteParams>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let bytes = read_body(&gw, body).await?;
    let v = optional_body::<IssueBody>(&bytes).and_then(|b| request::issue("", id, with_header_key(&headers, b.idempotency_key)?));
    submit(&gw, &headers, &params, &t, v).await
}

/// `POST /v1/invoices/{id}/payments` (Idempotency-Key required).
pub async fn record_payment(State(gw): Gw, Path(id): Path<String>, Query(params): Query<WriteParams>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let bytes = read_body(&gw, body).await?;
    let v = request::parse::<PaymentBody>(&bytes, "").and_then(|mut b| {
        b.idempotency_key = with_header_key(&headers, b.idempotency_key.take())?;
        request::payment("", id, b, Date::today_utc())
    });
    submit(&gw, &headers, &params, &t, v).await
}

/// `POST /v1/invoices/{id}/void`.
pub async fn void_invoice(State(gw): Gw, Path(id): Path<String>, Query(params): Query<WriteParams>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let bytes = read_body(&gw, body).await?;
    let v = optional_body::<VoidBody>(&bytes)
        .and_then(|b| request::void("", id, b.reason, with_header_key(&headers, b.idempotency_key)?));
    submit(&gw, &headers, &params, &t, v).await
}

/// `POST /v1/commands:batch`: each item accepted or rejected on its own, in order.
pub async fn batch(State(gw): Gw, Query(params): Query<WriteParams>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let wait = params.wait()?;
    let corr = correlation(&headers)?;
    let bytes = read_body(&gw, body).await?;
    let items = request::batch_items(&bytes)?;
    if items.len() > gw.config.max_batch_commands {
        return Err(ApiError::new(
            413,
            "too_many_commands",
            format!("a batch holds at most {} commands, got {}", gw.config.max_batch_commands, items.len()),
        ));
    }
    let (today, issued_at) = (Date::today_utc(), now_ms());
    let mut results: Vec<ItemResult<'_>> = Vec::with_capacity(items.len());
    let mut prepared: Vec<(usize, Prepared)> = Vec::with_capacity(items.len());
    // Error paths name the item ("commands[3].amount"); the prefix is written into one buffer.
    let mut prefix = String::with_capacity(24);
    for (i, item) in items.into_iter().enumerate() {
        let prefix = request::item_prefix(&mut prefix, i);
        let p = item
            .and_then(|item| request::batch_item(prefix, item, today))
            .and_then(|v| prepare(&gw, &t, v, &corr, issued_at, prefix));
        match p {
            Ok(p) => {
                results.push(ItemResult::Pending);
                prepared.push((i, p));
            }
            Err(error) => results.push(ItemResult::Rejected { status: "rejected", error }),
        }
    }
    let outgoing: Vec<OutgoingCommand> = prepared.iter_mut().map(|(_, p)| std::mem::take(&mut p.out)).collect();
    let bytes: u64 = outgoing.iter().map(|o| o.payload.len() as u64).sum();
    admit(&gw, bytes)?;
    let sent = gw.producer.send_all(&outgoing, &corr).await;
    drop(outgoing);
    record_produced(&gw, bytes);
    // The accepted commands (item index, prepared command), kept only to wait for them.
    let mut accepted_at: Vec<(usize, &Prepared)> = Vec::new();
    let mut accepted = 0;
    for ((i, p), r) in prepared.iter().zip(sent) {
        results[*i] = match r {
            Ok(()) => {
                accepted += 1;
                if wait {
                    accepted_at.push((*i, p));
                }
                ItemResult::Accepted { status: "accepted", command_id: &p.command_id, invoice_id: &p.invoice_id }
            }
            Err(e) => ItemResult::Rejected {
                status: "rejected",
                error: ApiError::unavailable(format!("the broker did not acknowledge: {e}")),
            },
        };
    }
    let rejected = results.len() - accepted;
    gw.metrics.commands.with_label_values(&["accepted"]).inc_by(accepted as u64);
    gw.metrics.commands.with_label_values(&["invalid"]).inc_by(rejected as u64);
    if wait {
        let ids: Vec<&str> = accepted_at.iter().map(|(_, p)| p.command_id.as_str()).collect();
        let statuses = wait_for(&gw, &t.tenant_id, &ids).await?;
        for (&(i, p), st) in accepted_at.iter().zip(statuses) {
            let mut status = status_json(&p.command_id, st.as_ref());
            status["invoice_id"] = json!(p.invoice_id);
            results[i] = ItemResult::Json(status);
        }
    }
    // Serialized straight from these types: building a JSON tree per item first was a tenth
    // of the gateway's time under batch load.
    let mut resp = (StatusCode::OK, Json(BatchResponse { accepted, rejected, results })).into_response();
    if let Ok(v) = HeaderValue::from_str(&corr) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    Ok(resp)
}

/// An invoice as the API shows it, serialized straight from the stored one. Built as a
/// `serde_json::Value` it was the largest cost of a list page: a map node and a string per
/// field, sorted into a `BTreeMap`, then written out (`perf record` of the gateway under
/// `billstream-load query --list-pct 100`). The fields are in the order the map wrote them,
/// alphabetical, so the bytes are as before.
#[derive(Serialize)]
struct InvoiceView<'a> {
    amount_paid: Decimal,
    balance_due: Decimal,
    currency: billstream_schemas::Currency,
    customer_id: &'a str,
    #[serde(serialize_with = "as_text")]
    due_date: Date,
    invoice_id: &'a str,
    #[serde(serialize_with = "as_text")]
    issue_date: Date,
    #[serde(serialize_with = "lines_view")]
    lines: &'a [billstream_processors::domain::InvoiceLine],
    metadata: &'a BTreeMap<String, String>,
    #[serde(serialize_with = "payments_view")]
    payments: &'a [billstream_processors::domain::Payment],
    status: &'static str,
    subtotal: Decimal,
    tax: Decimal,
    total: Decimal,
    void_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct LineView<'a> {
    description: &'a str,
    net: Decimal,
    quantity: Decimal,
    tax: Decimal,
    tax_rate: Decimal,
    unit_price: Decimal,
}

#[derive(Serialize)]
struct PaymentView<'a> {
    amount: Decimal,
    external_reference: Option<&'a str>,
    method: &'a str,
    payment_id: &'a str,
    #[serde(serialize_with = "as_text")]
    received_on: Date,
}

fn as_text<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn lines_view<S: serde::Serializer>(lines: &&[billstream_processors::domain::InvoiceLine], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(lines.iter().map(|l| LineView {
        description: &l.description,
        net: l.net,
        quantity: l.quantity,
        tax: l.tax,
        tax_rate: l.tax_rate,
        unit_price: l.unit_price,
    }))
}

fn payments_view<S: serde::Serializer>(payments: &&[billstream_processors::domain::Payment], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(payments.iter().map(|p| PaymentView {
        amount: p.amount,
        external_reference: p.external_reference.as_deref(),
        method: &p.method,
        payment_id: &p.payment_id,
        received_on: p.received_on,
    }))
}

fn invoice_view(inv: &Invoice) -> InvoiceView<'_> {
    InvoiceView {
        amount_paid: inv.amount_paid,
        balance_due: inv.balance_due(),
        currency: inv.currency,
        customer_id: &inv.customer_id,
        due_date: inv.due_date,
        invoice_id: &inv.invoice_id,
        issue_date: inv.issue_date,
        lines: &inv.lines,
        metadata: &inv.metadata,
        payments: &inv.payments,
        status: inv.status.as_str(),
        subtotal: inv.subtotal,
        tax: inv.tax,
        total: inv.total,
        void_reason: inv.void_reason.as_deref(),
    }
}

/// `GET /v1/invoices/{id}`.
pub async fn get_invoice(State(gw): Gw, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    request::check_invoice_id("id", &id)?;
    match gw.store.get_invoice(&t.tenant_id, &id).await? {
        Some(inv) => Ok(Json(invoice_view(&inv)).into_response()),
        None => Err(ApiError::not_found("invoice_not_found", format!("no invoice {id:?} (it may not be applied yet)"))),
    }
}

/// Query of `GET /v1/invoices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// draft | open | paid | void.
    pub status: Option<String>,
    /// From the previous page's `next_page_token`.
    pub page_token: Option<String>,
    /// Page size, default 50.
    pub limit: Option<usize>,
}

/// `GET /v1/invoices`.
pub async fn list_invoices(State(gw): Gw, Query(q): Query<ListParams>, headers: HeaderMap) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(InvoiceStatus::parse(s).ok_or_else(|| ApiError::invalid("status", format!("status must be draft, open, paid or void; got {s:?}")))?),
    };
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > gw.config.max_page_size {
        return Err(ApiError::invalid("limit", format!("limit must be 1 to {}", gw.config.max_page_size)));
    }
    let page = gw.store.list_invoices(&t.tenant_id, status, q.page_token.as_deref(), limit).await?;
    #[derive(Serialize)]
    struct Page<'a> {
        invoices: Vec<InvoiceView<'a>>,
        next_page_token: Option<String>,
    }
    Ok(Json(Page { invoices: page.invoices.iter().map(invoice_view).collect(), next_page_token: page.next_page_token }).into_response())
}

/// Query of `GET /v1/summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    /// The day "overdue" and "this month" are measured at (default today, UTC).
    pub as_of: Option<String>,
}

/// `GET /v1/summary`: per currency, outstanding, overdue, paid this month and counts.
pub async fn summary(State(gw): Gw, Query(q): Query<SummaryParams>, headers: HeaderMap) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let as_of = match &q.as_of {
        Some(s) => s.parse::<Date>().map_err(|e| ApiError::invalid("as_of", e.to_string()))?,
        None => Date::today_utc(),
    };
    #[derive(Default)]
    struct Row {
        outstanding: Decimal,
        overdue: Decimal,
        paid_this_month: Decimal,
        counts: [u64; 4],
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (k, v) in gw.store.tenant_totals(&t.tenant_id).await? {
        let r = rows.entry(k.currency.to_string()).or_default();
        r.outstanding += v.outstanding;
        for (c, n) in r.counts.iter_mut().zip(v.counts) {
            *c += n;
        }
    }
    for (k, v) in gw.store.month_paid(&t.tenant_id, as_of.year_month()).await? {
        rows.entry(k.currency.to_string()).or_default().paid_this_month += v;
    }
    for item in gw.store.open_items_due_before(&t.tenant_id, as_of).await? {
        rows.entry(item.currency.to_string()).or_default().overdue += item.balance_due;
    }
    let currencies: Vec<Value> = rows
        .into_iter()
        .map(|(currency, r)| {
            json!({
                "currency": currency,
                "outstanding": r.outstanding,
                "overdue": r.overdue,
                "paid_this_month": r.paid_this_month,
                "counts": {"draft": r.counts[0], "open": r.counts[1], "paid": r.counts[2], "void": r.counts[3]},
            })
        })
        .collect();
    Ok(Json(json!({"as_of": as_of.to_string(), "currencies": currencies})).into_response())
}

/// `GET /v1/commands/{id}`: pending, applied, or rejected with its reason.
pub async fn get_command(State(gw): Gw, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let t = tenant(&gw, &headers).await?;
    let status = gw.store.get_command(&t.tenant_id, &id).await?;
    Ok(Json(status_json(&id, status.as_ref())).into_response())
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(gw): Gw) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&gw.registry.gather(), &mut out) {
        Ok(()) => ([("content-type", "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => ApiError::new(500, "internal", e.to_string()).into_response(),
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    Json(openapi::document()).into_response()
}

/// Any other path.
pub async fn not_found() -> Response {
    ApiError::not_found("not_found", "no such endpoint; see /openapi.json").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use billstream_processors::domain::{InvoiceLine, Payment};

    fn invoice() -> Invoice {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        let date = |s: &str| s.parse::<Date>().expect("date");
        Invoice {
            tenant_id: "t_1".into(),
            invoice_id: "inv-\"7\"".into(),
            customer_id: "cust-1".into(),
            currency: "EUR".parse().expect("currency"),
            issue_date: date("2026-01-31"),
            due_date: date("2026-03-02"),
            status: InvoiceStatus::Open,
            lines: vec![
                InvoiceLine { description: "hours\nof work".into(), quantity: d("1.5"), unit_price: d("80.00"), tax_rate: d("19"), net: d("120.00"), tax: d("22.80") },
                InvoiceLine { description: "travel".into(), quantity: d("1"), unit_price: d("0.10"), tax_rate: d("0"), net: d("0.10"), tax: d("0.00") },
            ]
            .into(),
            subtotal: d("120.10"),
            tax: d("22.80"),
            total: d("142.90"),
            amount_paid: d("42.90"),
            payments: vec![Payment {
                payment_id: "p-1".into(),
                command_id: "c-1".into(),
                amount: d("42.90"),
                method: "card".into(),
                external_reference: None,
                received_on: date("2026-02-10"),
            }],
            metadata: [("po".to_string(), "4711".to_string()), ("a".to_string(), "é".to_string())].into(),
            void_reason: None,
            updated_at_ms: 5,
            created_by: "c-0".into(),
        }
    }

    #[test]
    fn an_invoice_renders_every_field_in_the_apis_form() {
        // Every field, nulls included, with JSON escapes, decimals as strings with their
        // scale, in the order earlier builds wrote them (a client may have compared bytes).
        let json = serde_json::to_string(&invoice_view(&invoice())).expect("json");
        assert_eq!(
            json,
            r#"{"amount_paid":"42.90","balance_due":"100.00","currency":"EUR","customer_id":"cust-1","due_date":"2026-03-02","invoice_id":"inv-\"7\"","issue_date":"2026-01-31","lines":[{"description":"hours\nof work","net":"120.00","quantity":"1.5","tax":"22.80","tax_rate":"19","unit_price":"80.00"},{"description":"travel","net":"0.10","quantity":"1","tax":"0.00","tax_rate":"0","unit_price":"0.10"}],"metadata":{"a":"é","po":"4711"},"payments":[{"amount":"42.90","external_reference":null,"method":"card","payment_id":"p-1","received_on":"2026-02-10"}],"status":"open","subtotal":"120.10","tax":"22.80","total":"142.90","void_reason":null}"#
        );
    }
}
