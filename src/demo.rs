//! `billstream demo`: the whole pipeline in one process, driven through the HTTP gateway by
//! a realistic, seeded workload, then reconciled against what was sent.
//!
//! Workload: several tenants (one split into buckets), invoices in several currencies with
//! 1–5 lines, issue, partial and full payments, voids, retried requests with the same
//! Idempotency-Key, requests the gateway refuses, commands the domain rejects, and raw
//! poison messages published straight to Kafka. Each phase is sent after the previous one
//! was acknowledged, so per invoice the commands reach Kafka in order.

use crate::config::Config;
use crate::pipeline::Pipeline;
use anyhow::{Context, Result, anyhow, bail};
use billstream_ingest::auth::create_tenant;
use billstream_schemas::money::line_amounts;
use billstream_schemas::{Currency, topics};
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Size and shape of the demo workload.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of tenants.
    pub tenants: usize,
    /// Number of invoices across all tenants.
    pub invoices: usize,
    /// Seed of the workload.
    pub seed: u64,
    /// Commands per batch request.
    pub batch: usize,
    /// Give up waiting for the processors after this long.
    pub timeout: Duration,
}

/// The demo's final line.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// Command items sent to the gateway (including refused ones and retries).
    pub commands_sent: u64,
    /// Applied by the processors.
    pub commands_applied: u64,
    /// Refused by the gateway's validation or rejected by a domain rule.
    pub commands_rejected: u64,
    /// Retries recognised and applied no second time.
    pub duplicates: u64,
    /// Poison messages routed to the dead-letter topic.
    pub dlq: u64,
    /// From the first request to the last command applied.
    pub elapsed_s: f64,
    /// commands_sent / elapsed_s.
    pub commands_per_s: f64,
    /// Invoices created.
    pub invoices: u64,
    /// Payments applied.
    pub payments: u64,
    /// True only if every invoice, balance, total and count matched exactly.
    pub reconciled: bool,
    /// What did not match, if anything (at most 20 lines).
    pub mismatches: Vec<String>,
}

/// SplitMix64: small, seeded, good enough for a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Draft,
    Open,
    Paid,
    Void,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Open => "open",
            Status::Paid => "paid",
            Status::Void => "void",
        }
    }
}

/// What the demo expects one invoice to look like.
struct Expected {
    tenant: usize,
    invoice_id: String,
    currency: Currency,
    total: Decimal,
    paid: Decimal,
    payments: u64,
    status: Status,
}

/// Expected outcomes, counted as commands are generated.
#[derive(Default)]
struct Tally {
    sent: u64,
    applied: u64,
    domain_rejected: u64,
    gateway_rejected: u64,
    duplicates: u64,
    rejected_commands: Vec<(usize, String, &'static str)>,
}

struct Tenant {
    id: String,
    key: String,
}

struct Driver {
    client: reqwest::Client,
    base: String,
    tenants: Vec<Tenant>,
    batch: usize,
    accepted: u64,
}

impl Driver {
    /// Sends items (per tenant, in order) in batch requests; returns per item the command id
    /// when accepted, `None` when refused.
    async fn send(&mut self, items: Vec<(usize, Value)>) -> Result<Vec<Option<String>>> {
        let mut out = vec![None; items.len()];
        let mut by_tenant: BTreeMap<usize, Vec<(usize, Value)>> = BTreeMap::new();
        for (i, (t, v)) in items.into_iter().enumerate() {
            by_tenant.entry(t).or_default().push((i, v));
        }
        let mut requests = Vec::new();
        for (t, list) in by_tenant {
            for chunk in list.chunks(self.batch) {
                let (idx, body): (Vec<usize>, Vec<Value>) = chunk.iter().cloned().unzip();
                let req = self
                    .client
                    .post(format!("{}/v1/commands:batch", self.base))
                    .header("x-api-key", &self.tenants[t].key)
                    .json(&json!({"commands": body}));
                requests.push(async move {
                    loop {
                        let req = req.try_clone().ok_or_else(|| anyhow!("request not clonable"))?;
                        let resp = req.send().await.context("batch request")?;
                        let status = resp.status();
                        let v: Value = resp.json().await.context("batch response")?;
                        // The processors are behind: nothing was produced, send it again.
                        if status.as_u16() == 503 && v["code"] == "backlog_full" {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        if !status.is_success() {
                            bail!("batch request failed with {status}: {v}");
                        }
                        return Ok::<_, anyhow::Error>((idx, v));
                    }
                });
            }
        }
        let mut results = futures::stream::iter(requests).buffer_unordered(4);
        while let Some(r) = results.next().await {
            let (idx, v) = r?;
            let items = v["results"].as_array().ok_or_else(|| anyhow!("batch response without results: {v}"))?;
            for (i, r) in idx.into_iter().zip(items) {
                if r["status"] == "accepted" {
                    self.accepted += 1;
                    out[i] = r["command_id"].as_str().map(str::to_string);
                }
            }
        }
        Ok(out)
    }
}

const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "JPY", "KWD"];
const TAX_RATES: [&str; 5] = ["0", "7", "19", "20", "7.7"];

fn money(rng: &mut Rng, currency: Currency) -> Decimal {
    // Prices with up to three decimals, so rounding at the line level matters.
    let minor = currency.minor_units();
    let raw = Decimal::new((rng.below(50_000) + 1) as i64, 2);
    if rng.chance(20) { Decimal::new((rng.below(500_000) + 1) as i64, 3) } else { currency.round(raw.round_dp(minor)) }
}

fn split(rng: &mut Rng, total: Decimal, currency: Currency) -> Decimal {
    // A part of `total` in whole minor units, at least one unit, less than the total.
    let unit = Decimal::new(1, currency.minor_units());
    let units = (total / unit).trunc();
    if units <= Decimal::ONE {
        return total;
    }
    let frac = Decimal::new((rng.below(80) + 10) as i64, 2);
    let part = (units * frac).trunc().max(Decimal::ONE).min(units - Decimal::ONE);
    part * unit
}

/// Runs the demo: start, drive, wait, reconcile, stop.
pub async fn run(mut config: Config, opts: DemoOptions) -> Result<DemoReport> {
    let dir = config.data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    config.data_dir = dir;
    config.http.listen = "127.0.0.1:0".into();
    let pipeline = Pipeline::start(&config).await?;
    if !pipeline.wait_ready(Duration::from_secs(60)).await {
        bail!("the processor got no partitions of {} within 60 s", topics::COMMANDS);
    }
    println!("pipeline up: http://{} kafka {} store {}", pipeline.http_addr, pipeline.bootstrap, config.store_dir().display());
    let result = drive(&pipeline, &opts).await;
    pipeline.shutdown().await?;
    result
}

async fn drive(p: &Pipeline, opts: &DemoOptions) -> Result<DemoReport> {
    let mut rng = Rng(opts.seed);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let mut tenants = Vec::new();
    for i in 0..opts.tenants.max(1) {
        let buckets = if i == 0 { 4 } else { 1 };
        let (t, key) = create_tenant(p.store.as_ref(), &format!("demo-tenant-{i}"), buckets, now_ms).await?;
        tenants.push(Tenant { id: t.tenant_id, key });
    }
    let tenant_currencies: Vec<Vec<Currency>> = (0..tenants.len())
        .map(|i| {
            let n = 2 + (i % 2);
            (0..n).map(|k| CURRENCIES[(i + k) % CURRENCIES.len()].parse().expect("listed currencies are ISO 4217")).collect()
        })
        .collect();
    let mut d = Driver { client: reqwest::Client::new(), base: format!("http://{}", p.http_addr), tenants, batch: opts.batch.max(1), accepted: 0 };
    let mut tally = Tally::default();
    let mut invoices: Vec<Expected> = Vec::new();
    let started = Instant::now();

    // Phase 1: create. Skewed: tenant 0 gets about half the invoices.
    let mut items = Vec::new();
    for n in 0..opts.invoices {
        let t = if rng.chance(50) { 0 } else { rng.below(d.tenants.len() as u64) as usize };
        let currency = tenant_currencies[t][rng.below(tenant_currencies[t].len() as u64) as usize];
        let mut lines = Vec::new();
        let mut total = Decimal::ZERO;
        for _ in 0..=rng.below(5) {
            let quantity = if rng.chance(80) { Decimal::from(rng.below(20) + 1) } else { Decimal::new((rng.below(1000) + 1) as i64, 2) };
            let unit_price = money(&mut rng, currency);
            let tax_rate: Decimal = TAX_RATES[rng.below(TAX_RATES.len() as u64) as usize].parse()?;
            let a = line_amounts(currency, quantity, unit_price, tax_rate)?;
            total += a.net + a.tax;
            lines.push(json!({"description": "service", "quantity": quantity.to_string(), "unit_price": unit_price.to_string(), "tax_rate": tax_rate.to_string()}));
        }
        let invoice_id = format!("INV-{t}-{n:07}");
        items.push((t, json!({
            "type": "create_invoice", "invoice_id": invoice_id, "customer_id": format!("cust-{}", rng.below(500)),
            "currency": currency.code(), "issue_date": "2026-10-01", "due_date": if rng.chance(50) { "2026-10-31" } else { "2027-01-31" },
            "lines": lines, "metadata": {"source": "demo"}
        })));
        invoices.push(Expected { tenant: t, invoice_id, currency, total, paid: Decimal::ZERO, payments: 0, status: Status::Draft });
        tally.applied += 1;
    }
    // A few requests the gateway must refuse: nothing of them may reach Kafka.
    for k in 0..(opts.invoices / 100).max(2) {
        let bad = if k % 2 == 0 {
            json!({"type": "create_invoice", "customer_id": "c", "currency": "EURO", "issue_date": "2026-10-01", "due_date": "2026-10-31",
                   "lines": [{"description": "x", "quantity": "1", "unit_price": "1.00"}]})
        } else {
            json!({"type": "create_invoice", "customer_id": "c", "currency": "EUR", "issue_date": "2026-10-01", "due_date": "2026-10-31",
                   "lines": [{"description": "x", "quantity": 1, "unit_price": 9.99}]})
        };
        items.push((rng.below(d.tenants.len() as u64) as usize, bad));
        tally.gateway_rejected += 1;
    }
    tally.sent += items.len() as u64;
    d.send(items).await?;
    println!("phase 1: {} invoices created", invoices.len());

    // Phase 2: issue most, void some drafts.
    let mut items = Vec::new();
    for inv in invoices.iter_mut() {
        if rng.chance(90) {
            items.push((inv.tenant, json!({"type": "issue_invoice", "invoice_id": inv.invoice_id})));
            // A zero-total invoice is settled the moment it is issued.
            inv.status = if inv.total.is_zero() { Status::Paid } else { Status::Open };
            tally.applied += 1;
        } else if rng.chance(50) {
            items.push((inv.tenant, json!({"type": "void_invoice", "invoice_id": inv.invoice_id, "reason": "duplicate"})));
            inv.status = Status::Void;
            tally.applied += 1;
        }
    }
    tally.sent += items.len() as u64;
    d.send(items).await?;
    println!("phase 2: invoices issued and voided");

    // Phase 3: payments — full, split in two, partial, none; some requests retried.
    let mut items = Vec::new();
    for (n, inv) in invoices.iter_mut().enumerate() {
        if inv.status != Status::Open {
            continue;
        }
        let behaviour = rng.below(100);
        let amounts: Vec<Decimal> = match behaviour {
            0..=49 => vec![inv.total],
            50..=74 => {
                let first = split(&mut rng, inv.total, inv.currency);
                if first == inv.total { vec![inv.total] } else { vec![first, inv.total - first] }
            }
            75..=89 => {
                let part = split(&mut rng, inv.total, inv.currency);
                vec![part]
            }
            _ => {
                if rng.chance(30) {
                    items.push((inv.tenant, json!({"type": "void_invoice", "invoice_id": inv.invoice_id})));
                    inv.status = Status::Void;
                    tally.applied += 1;
                }
                vec![]
            }
        };
        for (k, amount) in amounts.into_iter().enumerate() {
            if amount <= Decimal::ZERO {
                continue;
            }
            let item = json!({"type": "record_payment", "invoice_id": inv.invoice_id, "amount": amount.to_string(),
                              "currency": inv.currency.code(), "method": "bank_transfer", "received_on": "2026-11-02",
                              "idempotency_key": format!("pay-{n}-{k}")});
            items.push((inv.tenant, item.clone()));
            tally.applied += 1;
            if rng.chance(10) {
                items.push((inv.tenant, item));
                tally.duplicates += 1;
            }
            inv.paid += amount;
            inv.payments += 1;
        }
        if inv.status == Status::Open && inv.paid == inv.total {
            inv.status = Status::Paid;
        }
    }
    tally.sent += items.len() as u64;
    d.send(items).await?;
    println!("phase 3: payments recorded");

    // Phase 4: commands a domain rule must reject.
    let mut items = Vec::new();
    let mut expected_codes = Vec::new();
    for (n, inv) in invoices.iter().enumerate() {
        if !rng.chance(2) {
            continue;
        }
        let (item, code) = match inv.status {
            Status::Paid => (json!({"type": "record_payment", "invoice_id": inv.invoice_id, "amount": "1", "currency": inv.currency.code(),
                                    "method": "card", "idempotency_key": format!("late-{n}")}), "invoice_already_paid"),
            Status::Void => (json!({"type": "record_payment", "invoice_id": inv.invoice_id, "amount": "1", "currency": inv.currency.code(),
                                    "method": "card", "idempotency_key": format!("void-{n}")}), "invoice_voided"),
            Status::Open if inv.payments > 0 => (json!({"type": "void_invoice", "invoice_id": inv.invoice_id}), "has_payments"),
            Status::Open => (json!({"type": "issue_invoice", "invoice_id": inv.invoice_id}), "invalid_state"),
            Status::Draft => (json!({"type": "record_payment", "invoice_id": inv.invoice_id, "amount": "1", "currency": inv.currency.code(),
                                     "method": "card", "idempotency_key": format!("draft-{n}")}), "invoice_not_issued"),
        };
        items.push((inv.tenant, item));
        expected_codes.push((inv.tenant, code));
        tally.domain_rejected += 1;
    }
    tally.sent += items.len() as u64;
    let ids = d.send(items).await?;
    for (id, (t, code)) in ids.into_iter().zip(expected_codes) {
        if let Some(id) = id {
            tally.rejected_commands.push((t, id, code));
        }
    }

    // Poison: bytes that are not a billstream command, straight onto the topic.
    let producer: FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &p.bootstrap).create()?;
    let poison: [&[u8]; 4] = [b"{\"not\":\"avro\"}", b"\x00\x00\x00\x00\x01\x02", b"\x00\x00\x00\x03\xe7garbage", b""];
    for (i, bytes) in poison.iter().enumerate() {
        producer
            .send(FutureRecord::to(topics::COMMANDS).key(&format!("poison-{i}")).payload(*bytes), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| anyhow!("publishing a poison message: {e}"))?;
    }
    println!("phase 4: {} invalid commands and {} poison messages sent", tally.domain_rejected, poison.len());

    // Wait until the processors consumed everything the broker acknowledged.
    let expected_messages = d.accepted + poison.len() as u64;
    let mut last_print = Instant::now();
    loop {
        let consumed = p.processor_metrics.consumed();
        if consumed >= expected_messages {
            break;
        }
        if started.elapsed() > opts.timeout {
            bail!("processors consumed {consumed} of {expected_messages} messages within {:?}", opts.timeout);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            eprintln!("  applied {consumed}/{expected_messages} ({:.0} s)", started.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("all {expected_messages} messages processed in {elapsed:.2} s; reconciling");

    let mismatches = reconcile(&d, &invoices, &tally, p).await?;
    let m = &p.processor_metrics.messages;
    let payments: u64 = invoices.iter().map(|i| i.payments).sum();
    Ok(DemoReport {
        commands_sent: tally.sent,
        commands_applied: m.with_label_values(&["applied"]).get(),
        commands_rejected: m.with_label_values(&["rejected"]).get() + tally.gateway_rejected,
        duplicates: m.with_label_values(&["duplicate"]).get(),
        dlq: m.with_label_values(&["dlq"]).get(),
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        commands_per_s: (tally.sent as f64 / elapsed).round(),
        invoices: invoices.len() as u64,
        payments,
        reconciled: mismatches.is_empty(),
        mismatches: mismatches.into_iter().take(20).collect(),
    })
}

async fn reconcile(d: &Driver, invoices: &[Expected], tally: &Tally, p: &Pipeline) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let m = &p.processor_metrics.messages;
    let counts = [
        ("applied", tally.applied, m.with_label_values(&["applied"]).get()),
        ("rejected", tally.domain_rejected, m.with_label_values(&["rejected"]).get()),
        ("duplicate", tally.duplicates, m.with_label_values(&["duplicate"]).get()),
        ("dlq", 4, m.with_label_values(&["dlq"]).get()),
        ("accepted by the gateway", tally.sent - tally.gateway_rejected, d.accepted),
    ];
    for (what, want, got) in counts {
        if want != got {
            bad.push(format!("{what}: expected {want}, got {got}"));
        }
    }

    // Every invoice, over HTTP.
    let checks = invoices.iter().map(|inv| {
        let req = d.client.get(format!("{}/v1/invoices/{}", d.base, inv.invoice_id)).header("x-api-key", &d.tenants[inv.tenant].key);
        async move {
            let v: Value = req.send().await?.json().await?;
            let dec = |f: &str| v[f].as_str().and_then(|s| s.parse::<Decimal>().ok());
            let mut problems = Vec::new();
            if v["status"] != inv.status.as_str() {
                problems.push(format!("{}: status {} != expected {}", inv.invoice_id, v["status"], inv.status.as_str()));
            }
            if dec("total") != Some(inv.total) || dec("amount_paid") != Some(inv.paid) || dec("balance_due") != Some(inv.total - inv.paid) {
                problems.push(format!(
                    "{}: total/paid/balance {}/{}/{} != expected {}/{}/{}",
                    inv.invoice_id, v["total"], v["amount_paid"], v["balance_due"], inv.total, inv.paid, inv.total - inv.paid
                ));
            }
            Ok::<_, anyhow::Error>(problems)
        }
    });
    let mut stream = futures::stream::iter(checks).buffer_unordered(32);
    while let Some(r) = stream.next().await {
        bad.extend(r?);
    }

    // Per tenant and currency: outstanding and counts, from the summary endpoint.
    for (t, tenant) in d.tenants.iter().enumerate() {
        let v: Value = d.client.get(format!("{}/v1/summary", d.base)).header("x-api-key", &tenant.key).send().await?.json().await?;
        let mut want: BTreeMap<String, (Decimal, [u64; 4])> = BTreeMap::new();
        for inv in invoices.iter().filter(|i| i.tenant == t) {
            let e = want.entry(inv.currency.code().to_string()).or_default();
            if inv.status == Status::Open {
                e.0 += inv.total - inv.paid;
            }
            e.1[inv.status as usize] += 1;
        }
        for row in v["currencies"].as_array().cloned().unwrap_or_default() {
            let cur = row["currency"].as_str().unwrap_or_default().to_string();
            let (out, counts) = want.remove(&cur).unwrap_or_default();
            let got_out = row["outstanding"].as_str().and_then(|s| s.parse::<Decimal>().ok());
            let c = &row["counts"];
            let got_counts = [c["draft"].as_u64(), c["open"].as_u64(), c["paid"].as_u64(), c["void"].as_u64()];
            if got_out != Some(out) || got_counts != counts.map(Some) {
                bad.push(format!("tenant {} {cur}: summary {row} != expected outstanding {out} counts {counts:?}", tenant.id));
            }
        }
        for (cur, _) in want {
            bad.push(format!("tenant {} {cur}: missing from the summary", tenant.id));
        }
    }

    // Rejected commands say why.
    for (t, id, code) in &tally.rejected_commands {
        let v: Value = d.client.get(format!("{}/v1/commands/{id}", d.base)).header("x-api-key", &d.tenants[*t].key).send().await?.json().await?;
        if v["status"] != "rejected" || v["reason"]["code"] != *code {
            bad.push(format!("command {id}: {v} != expected rejected with {code}"));
        }
    }
    Ok(bad)
}
