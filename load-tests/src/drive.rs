//! Drivers: how commands reach the pipeline — HTTP batch requests, single-command HTTP
//! requests, or Avro straight onto Kafka — at a target rate with bounded concurrency.

use crate::observe::{CommandId, Ledger, SharedLedger};
use crate::target::{TenantKey, Target};
use crate::workload::{Item, Workload, batch_body};
use anyhow::{Result, anyhow};
use billstream_ingest::request::{self, BatchItem};
use billstream_schemas::topics::{COMMANDS, partition_key};
use billstream_schemas::{CommandEnvelope, Date, SchemaCatalog};
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A producer configured as the gateway's is (acks=all, idempotent, murmur2 partitioner).
pub fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// How commands are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverKind {
    /// `POST /v1/commands:batch`.
    HttpBatch,
    /// One request per command on the single-command endpoints.
    HttpSingle,
    /// Avro commands produced straight to `billing.commands`.
    Kafka,
}

/// What the drivers recorded; which commands were accepted goes to the [`Ledger`].
pub struct Sent {
    /// Items acknowledged (retries count again).
    pub accepted_items: u64,
    /// Items the gateway refused (validation).
    pub refused: u64,
    /// Requests that failed outright (transport, 5xx).
    pub failed: u64,
    /// Requests answered 503 `backlog_full` and sent again.
    pub throttled: u64,
    /// Acknowledgement latency per command, microseconds.
    pub ack_us: Histogram<u64>,
    /// Requests sent before this (Unix ms) are counted but kept out of `ack_us`.
    pub latency_from_ms: i64,
    /// Some accepted invoices, for the query scenario.
    pub invoices: Vec<(usize, String)>,
}

impl Sent {
    /// Empty.
    pub fn new() -> Result<Self> {
        Ok(Sent { accepted_items: 0, refused: 0, failed: 0, throttled: 0, ack_us: Histogram::new_with_bounds(1, 600_000_000, 3)?, latency_from_ms: 0, invoices: Vec::new() })
    }
}

/// A driver bound to a target.
pub struct Driver {
    kind: DriverKind,
    client: reqwest::Client,
    base: String,
    tenants: Vec<TenantKey>,
    producer: Option<FutureProducer>,
    catalog: Arc<SchemaCatalog>,
    /// Shared results.
    pub sent: Arc<Mutex<Sent>>,
    /// Where acceptances are recorded (the watcher records the events).
    pub ledger: SharedLedger,
}

impl Driver {
    /// A driver of `kind` for `target`, recording acceptances into `ledger`.
    pub fn new(kind: DriverKind, target: &Target, ledger: SharedLedger) -> Result<Self> {
        let producer = if kind == DriverKind::Kafka {
            Some(producer(&target.bootstrap)?)
        } else {
            None
        };
        Ok(Driver {
            kind,
            client: reqwest::Client::builder().pool_max_idle_per_host(256).build()?,
            base: target.base.clone(),
            tenants: target.tenants.clone(),
            producer,
            catalog: Arc::new(SchemaCatalog::embedded()),
            sent: Arc::new(Mutex::new(Sent::new()?)),
            ledger,
        })
    }

    /// Sends about `rate` commands/s (0: as fast as `concurrency` allows) in groups of
    /// `batch` until `duration` passed, pausing while more than `max_backlog` accepted
    /// commands are unresolved. Returns the number of items offered.
    ///
    /// The gateway holds writes back itself; the direct Kafka driver has nobody to do it,
    /// and the embedded broker drops what a lagging processor has not read yet.
    pub async fn run(&self, workload: &mut Workload, rate: f64, duration: Duration, batch: usize, concurrency: usize, max_backlog: u64) -> u64 {
        let sem = Arc::new(Semaphore::new(concurrency.max(1)));
        let start = Instant::now();
        let mut offered = 0u64;
        let mut tasks = Vec::new();
        while start.elapsed() < duration {
            while max_backlog > 0 && start.elapsed() < duration {
                if self.ledger.lock().unwrap_or_else(|p| p.into_inner()).unresolved() <= max_backlog {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else { break };
            let tenant = workload.pick_tenant() % self.tenants.len();
            let items = workload.batch(tenant, batch);
            offered += items.len() as u64;
            let job = self.send(tenant, items);
            tasks.push(tokio::spawn(async move {
                job.await;
                drop(permit);
            }));
            if tasks.len() > 4 * concurrency {
                tasks.retain(|t| !t.is_finished());
            }
            if rate > 0.0 {
                let due = start + Duration::from_secs_f64(offered as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        offered
    }

    fn send(&self, tenant: usize, items: Vec<Item>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (kind, client, base) = (self.kind, self.client.clone(), self.base.clone());
        let (sent, ledger) = (self.sent.clone(), self.ledger.clone());
        let key = self.tenants[tenant].clone();
        let producer = self.producer.clone();
        let catalog = self.catalog.clone();
        async move {
            let r = match kind {
                DriverKind::HttpBatch => http_batch(&client, &base, &key, tenant, items, &sent, &ledger).await,
                DriverKind::HttpSingle => http_single(&client, &base, &key, tenant, items, &sent, &ledger).await,
                DriverKind::Kafka => match producer {
                    Some(p) => kafka(&p, &catalog, &key, tenant, items, &sent, &ledger).await,
                    None => Err(anyhow!("no producer")),
                },
            };
            if let Err(e) = r {
                sent.lock().unwrap_or_else(|p| p.into_inner()).failed += 1;
                eprintln!("  request failed: {e:#}");
            }
        }
    }
}

/// Whether a request answered after `latency_us` was sent inside the latency window: one
/// clock read per request, not per command (they were 7 % of the harness's HTTP thread).
fn in_latency_window(s: &Sent, latency_us: u64) -> bool {
    crate::observe::now_ms() - (latency_us / 1000) as i64 >= s.latency_from_ms
}

/// A command the pipeline acknowledged, as a response names it.
struct Acked<'a> {
    command_id: &'a str,
    invoice_id: Option<&'a str>,
    /// A `create_invoice` item.
    create: bool,
}

/// Records one response: its acknowledged commands into the ledger, then counts, the
/// acknowledgement latency (sent to answered, `latency_us`) and some new invoices into
/// `sent` — one lock each, never both at once.
fn record(sent: &Mutex<Sent>, ledger: &Mutex<Ledger>, tenant: usize, acked: &[Acked<'_>], refused: u64, latency_us: u64) {
    if !acked.is_empty() {
        let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        for a in acked {
            ledger.accept(CommandId::of(a.command_id.as_bytes()));
        }
    }
    let mut s = sent.lock().unwrap_or_else(|p| p.into_inner());
    s.refused += refused;
    s.accepted_items += acked.len() as u64;
    if !acked.is_empty() && in_latency_window(&s, latency_us) {
        let _ = s.ack_us.record_n(latency_us.max(1), acked.len() as u64);
    }
    for a in acked.iter().filter(|a| a.create) {
        if s.invoices.len() >= 200_000 {
            break;
        }
        if let Some(i) = a.invoice_id {
            s.invoices.push((tenant, i.to_string()));
        }
    }
}

/// The parts of a batch response the harness reads, borrowed from the body: a string per
/// field and item was 3 % of the harness's CPU in allocation and freeing. Borrowing fails on a
/// string with an escape, which the gateway's statuses and ids never have (the request then
/// fails, loudly).
#[derive(serde::Deserialize)]
struct BatchResponse<'a> {
    #[serde(borrow)]
    results: Vec<BatchResult<'a>>,
}

#[derive(serde::Deserialize)]
struct BatchResult<'a> {
    status: &'a str,
    command_id: Option<&'a str>,
    invoice_id: Option<&'a str>,
}

async fn http_batch(client: &reqwest::Client, base: &str, key: &TenantKey, tenant: usize, items: Vec<Item>, sent: &Mutex<Sent>, ledger: &Mutex<Ledger>) -> Result<()> {
    let creates: Vec<bool> = items.iter().map(|i| i.create).collect();
    // Shared by every attempt (a 503 is answered by sending it again), not copied for each.
    let body = bytes::Bytes::from(batch_body(&items).into_bytes());
    let started = Instant::now();
    let (status, body) = loop {
        let resp = client
            .post(format!("{base}/v1/commands:batch"))
            .header("x-api-key", &key.api_key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.as_u16() == 503 {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if v["code"] == "backlog_full" {
                sent.lock().unwrap_or_else(|p| p.into_inner()).throttled += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        break (status, bytes);
    };
    let us = started.elapsed().as_micros() as u64;
    if !status.is_success() {
        return Err(anyhow!("batch answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    let parsed: BatchResponse = serde_json::from_slice(&body)?;
    let (mut acked, mut refused) = (Vec::with_capacity(parsed.results.len()), 0);
    for (r, create) in parsed.results.iter().zip(creates) {
        match &r.command_id {
            Some(id) if r.status == "accepted" => acked.push(Acked { command_id: id, invoice_id: r.invoice_id, create }),
            _ => refused += 1,
        }
    }
    record(sent, ledger, tenant, &acked, refused, us);
    Ok(())
}

async fn http_single(client: &reqwest::Client, base: &str, key: &TenantKey, tenant: usize, items: Vec<Item>, sent: &Mutex<Sent>, ledger: &Mutex<Ledger>) -> Result<()> {
    for item in items {
        let mut item: Value = serde_json::from_str(&item.json)?;
        let kind = item["type"].as_str().unwrap_or_default().to_string();
        let invoice = item["invoice_id"].as_str().unwrap_or_default().to_string();
        let path = match kind.as_str() {
            "create_invoice" => "/v1/invoices".to_string(),
            "issue_invoice" => format!("/v1/invoices/{invoice}/issue"),
            "record_payment" => format!("/v1/invoices/{invoice}/payments"),
            "void_invoice" => format!("/v1/invoices/{invoice}/void"),
            other => return Err(anyhow!("unknown command type {other}")),
        };
        if let Some(obj) = item.as_object_mut() {
            obj.remove("type");
            if kind != "create_invoice" {
                obj.remove("invoice_id");
            }
        }
        let started = Instant::now();
        let (status, body) = loop {
            let resp = client.post(format!("{base}{path}")).header("x-api-key", &key.api_key).json(&item).send().await?;
            let status = resp.status();
            let body: Value = resp.json().await?;
            if status.as_u16() == 503 && body["code"] == "backlog_full" {
                sent.lock().unwrap_or_else(|p| p.into_inner()).throttled += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            break (status, body);
        };
        let us = started.elapsed().as_micros() as u64;
        match body["command_id"].as_str() {
            Some(id) if status.as_u16() == 202 => {
                let acked = Acked { command_id: id, invoice_id: body["invoice_id"].as_str(), create: kind == "create_invoice" };
                record(sent, ledger, tenant, &[acked], 0, us);
            }
            _ if status.is_client_error() => record(sent, ledger, tenant, &[], 1, us),
            _ => return Err(anyhow!("{path} answered {status}: {body}")),
        }
    }
    Ok(())
}

/// A batch item as the gateway would publish it.
pub struct Encoded {
    /// Kafka key.
    pub key: String,
    /// Command id.
    pub command_id: String,
    /// Invoice id.
    pub invoice_id: String,
    /// Confluent-framed Avro.
    pub bytes: Vec<u8>,
}

/// Turns batch items into framed Avro commands the way the gateway would; items the gateway
/// would refuse come back as `None`.
pub fn encode_items(catalog: &SchemaCatalog, tenant_id: &str, items: Vec<Item>) -> Vec<Option<Encoded>> {
    let today = Date::today_utc();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    items
        .into_iter()
        .map(|item| {
            let parsed: BatchItem = request::parse(item.json.as_bytes(), "").ok()?;
            let mut v = request::batch_item("", parsed, today).ok()?;
            let command_id = request::assign_ids(tenant_id, &mut v);
            let invoice_id = v.payload.invoice_id().to_string();
            let envelope = CommandEnvelope {
                command_id: command_id.clone(),
                tenant_id: tenant_id.to_string(),
                correlation_id: None,
                issued_at_ms: now_ms,
                idempotency_key: v.idempotency_key,
                payload: v.payload,
            };
            let framed = catalog.encode_command(&envelope).ok()?;
            Some(Encoded { key: partition_key(tenant_id, 1, &invoice_id), command_id, invoice_id, bytes: framed })
        })
        .collect()
}

async fn kafka(producer: &FutureProducer, catalog: &SchemaCatalog, key: &TenantKey, tenant: usize, items: Vec<Item>, sent: &Mutex<Sent>, ledger: &Mutex<Ledger>) -> Result<()> {
    let creates: Vec<bool> = items.iter().map(|i| i.create).collect();
    let encoded = encode_items(catalog, &key.tenant_id, items);
    let started = Instant::now();
    let mut futures = Vec::new();
    let mut refused = 0;
    for (e, is_create) in encoded.into_iter().zip(creates) {
        match e {
            Some(e) => {
                futures.push(async move {
                    let r = producer.send(FutureRecord::to(COMMANDS).key(&e.key).payload(&e.bytes), Duration::from_secs(30)).await;
                    (r, e.command_id, e.invoice_id, is_create)
                });
            }
            None => refused += 1,
        }
    }
    let results = futures::future::join_all(futures).await;
    let us = started.elapsed().as_micros() as u64;
    // The items the broker acknowledged before the first failure count as accepted; the
    // failure fails the request.
    let mut acked = Vec::with_capacity(results.len());
    let mut failure = None;
    for (r, command_id, invoice_id, create) in &results {
        match r {
            Ok(_) => acked.push(Acked { command_id, invoice_id: Some(invoice_id), create: *create }),
            Err((e, _)) => {
                failure = Some(anyhow!("produce failed: {e}"));
                break;
            }
        }
    }
    record(sent, ledger, tenant, &acked, refused, us);
    failure.map_or(Ok(()), Err)
}
