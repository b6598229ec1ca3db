//! The scenarios: `steady`, `max`, `query` and `raw`, and the loss check that ends each.

use crate::drive::{Driver, DriverKind, Sent, encode_items};
use crate::observe::{Ledger, StoreSamples, Watcher, consumer_at_end, processor_counter};
use crate::report::Report;
use crate::target::{self, RAW_TOPIC, Target};
use crate::workload::{Workload, WorkloadConfig};
use anyhow::{Result, bail};
use billstream_schemas::SchemaCatalog;
use hdrhistogram::Histogram;
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A target rate for a duration.
    Steady,
    /// Ramp the rate until latency or backlog diverges, narrow the gap (`--refine`); report
    /// the highest sustained rate.
    Max,
    /// Hot point lookups and list pages while writes run at the given rate.
    Query,
    /// Produce and consume the same messages through the broker with no processing.
    Raw,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which measurement.
    pub scenario: Scenario,
    /// How commands are sent.
    pub driver: DriverKind,
    /// Commands/s (0: as fast as possible).
    pub rate: f64,
    /// How long to drive.
    pub duration: Duration,
    /// Items per request (and per lifecycle group).
    pub batch: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Workload shape.
    pub workload: WorkloadConfig,
    /// Messages of the raw measurement (0: skip it).
    pub raw_messages: usize,
    /// Longest wait for the last accepted commands to be resolved.
    pub settle_timeout: Duration,
    /// Drive unmeasured for this long first (0: no preload).
    pub preload: Duration,
    /// Keep commands issued in the run's first this-long out of the latency histograms.
    pub warmup: Duration,
    /// `billstream` binary to start.
    pub binary: Option<PathBuf>,
    /// Data directory of a started pipeline (cleared).
    pub data_dir: PathBuf,
    /// Partitions of a started pipeline's topics.
    pub partitions: i32,
    /// Extra environment for the started pipeline (BILLSTREAM__… overrides).
    pub pipeline_env: Vec<(String, String)>,
    /// Remote gateway URL (with `brokers` and `tenants`): drive that instead.
    pub url: Option<String>,
    /// Remote bootstrap servers.
    pub brokers: Option<String>,
    /// Remote tenants, `TENANT_ID:API_KEY`.
    pub tenants: Vec<String>,
    /// Topic where outcomes are observed.
    pub events_topic: String,
    /// `max`: first rate.
    pub start_rate: f64,
    /// `max`: length of each step.
    pub step: Duration,
    /// `max`: a step fails when its p99 ingest→applied exceeds this.
    pub max_p99: Duration,
    /// `max`: steps bisecting between the highest passing and the lowest failing rate.
    pub refine: u32,
    /// `max`: a step fails when the driver sent less than this share of its rate, or the
    /// pipeline resolved less than this share of the step's distinct commands.
    pub min_applied: f64,
    /// `query`: requests in flight.
    pub query_concurrency: usize,
    /// `query`: lists in every hundred requests (the rest are point lookups).
    pub list_pct: u64,
    /// `query`: invoices per list page.
    pub list_limit: usize,
    /// Pause sending while more accepted commands than this are unresolved (0: never).
    pub max_backlog: u64,
}

/// `max`: a step fails when it ends with more unresolved commands than it sends in this many
/// seconds.
const MAX_STEP_BACKLOG_S: f64 = 2.0;

/// One line of live progress.
fn progress(started: Instant, sent: &Mutex<Sent>, ledger: &Mutex<Ledger>) {
    let refused = sent.lock().unwrap_or_else(|p| p.into_inner()).refused;
    let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "  [{:>5.1} s] accepted {} refused {refused} resolved {} backlog {}",
        started.elapsed().as_secs_f64(),
        l.accepted(),
        l.resolved(),
        l.unresolved()
    );
}

/// Prints a progress line every `period` until aborted.
fn ticker(started: Instant, period: Duration, driver: &Arc<Driver>) -> tokio::task::JoinHandle<()> {
    let d = driver.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            progress(started, &d.sent, &d.ledger);
        }
    })
}

/// Waits until every accepted command was seen resolved, or until `idle` passes without a
/// new one. Returns when the last one was seen and how many were never seen (the loss).
async fn settle(ledger: &Mutex<Ledger>, idle: Duration) -> (Instant, u64) {
    let started = Instant::now();
    loop {
        let (unresolved, last_new) = {
            let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            (l.unresolved(), l.last_new().unwrap_or(started))
        };
        if unresolved == 0 || last_new.max(started).elapsed() > idle {
            return (last_new, unresolved);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Produces workload messages to the scratch topic while consuming them; the rate at which
/// they come out is the ceiling the pipeline is compared with.
fn raw(target: &Target, opts: &Options) -> Result<f64> {
    let catalog = SchemaCatalog::embedded();
    let mut w = Workload::new(WorkloadConfig { run_id: format!("{}-raw", opts.workload.run_id), ..opts.workload.clone() });
    let mut messages = Vec::with_capacity(opts.raw_messages);
    while messages.len() < opts.raw_messages {
        let t = w.pick_tenant() % target.tenants.len();
        let items = w.batch(t, opts.batch.max(1));
        for e in encode_items(&catalog, &target.tenants[t].tenant_id, items).into_iter().flatten() {
            messages.push((e.key, e.bytes));
        }
    }
    messages.truncate(opts.raw_messages);
    let consumer = consumer_at_end(&target.bootstrap, RAW_TOPIC)?;
    // Consume while producing: the embedded broker keeps only 5 MiB per partition, so a
    // topic filled first and read later would lose its head.
    let want = messages.len();
    let reader = std::thread::spawn(move || {
        let (mut got, mut bytes) = (0usize, 0usize);
        let deadline = Instant::now() + Duration::from_secs(120);
        while got < want && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                use rdkafka::message::Message;
                bytes += m.payload().map_or(0, <[u8]>::len);
                got += 1;
            }
        }
        (got, bytes, Instant::now())
    });
    let producer = crate::drive::producer(&target.bootstrap)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    rt.block_on(async {
        let sends = messages.iter().map(|(k, v)| producer.send(FutureRecord::to(RAW_TOPIC).key(k).payload(v), Duration::from_secs(60)));
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| anyhow::anyhow!("raw produce: {e}"))?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let (got, bytes, done) = reader.join().map_err(|_| anyhow::anyhow!("raw reader panicked"))?;
    let secs = done.duration_since(started).as_secs_f64();
    eprintln!("  raw: produced and consumed {got} messages ({} KiB) in {secs:.2} s", bytes / 1024);
    if got < messages.len() {
        bail!("raw: consumed only {got} of {} messages", messages.len());
    }
    Ok(got as f64 / secs)
}

async fn warm_up(target: &Target) -> Result<()> {
    // One command applied proves the processor has its partitions.
    let client = reqwest::Client::new();
    let body = json!({"customer_id": "warm-up", "currency": "EUR", "issue_date": "2026-01-01", "due_date": "2026-01-31",
                      "lines": [{"description": "warm-up", "quantity": "1", "unit_price": "1"}]});
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = client
            .post(format!("{}/v1/invoices?wait=applied", target.base))
            .header("x-api-key", &target.tenants[0].api_key)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = r
            && r.status().as_u16() == 200 {
                return Ok(());
            }
        if Instant::now() > deadline {
            bail!("the pipeline at {} did not apply a warm-up command within 90 s", target.base);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fills the store before a measurement: the same workload with other ids, flat out for
/// `opts.preload`, until all of it is applied. Returns the invoices it created and the
/// messages the gateway accepted from it.
async fn preload(target: &Target, opts: &Options) -> Result<(u64, u64)> {
    eprintln!("preloading for {:.0} s (not measured)", opts.preload.as_secs_f64());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let _watcher = Watcher::start(&target.bootstrap, &opts.events_topic, ledger.clone())?;
    let driver = Arc::new(Driver::new(opts.driver, target, ledger.clone())?);
    let mut workload = Workload::new(WorkloadConfig { run_id: format!("{}-preload", opts.workload.run_id), ..opts.workload.clone() });
    let started = Instant::now();
    let ticker = ticker(started, Duration::from_secs(5), &driver);
    driver.run(&mut workload, 0.0, opts.preload, opts.batch, opts.concurrency, opts.max_backlog).await;
    let (_, lost) = settle(&ledger, opts.settle_timeout).await;
    ticker.abort();
    if lost > 0 {
        bail!("preload: {lost} accepted commands were never applied");
    }
    eprintln!("preloaded {} invoices in {:.0} s", workload.generated.invoices, started.elapsed().as_secs_f64());
    let accepted_items = driver.sent.lock().unwrap_or_else(|p| p.into_inner()).accepted_items;
    Ok((workload.generated.invoices, accepted_items))
}

/// The outcomes of `billstream_processor_messages_total`, in the order [`outcome_counts`]
/// reports them.
const OUTCOMES: [&str; 4] = ["applied", "rejected", "duplicate", "dlq"];

/// The processors' message counters by outcome, from the pipeline's `/metrics` (cumulative
/// since it started); `None` when they cannot be read, or the gateway's process runs no
/// processors (a remote gateway with processors elsewhere): zeros there would read as
/// "nothing applied", and waiting for them to cover the run would only time out.
async fn processor_outcomes(base: &str) -> Option<[u64; 4]> {
    let text = metrics_text(base).await?;
    // A plain counter, printed from registration on (the outcome counters only once used).
    if !text.lines().any(|l| l.starts_with("billstream_processor_batches_total ")) {
        return None;
    }
    Some(OUTCOMES.map(|o| processor_counter(&text, o)))
}

/// The pipeline's `/metrics` page; `None` when it cannot be read.
async fn metrics_text(base: &str) -> Option<String> {
    reqwest::get(format!("{base}/metrics")).await.ok()?.error_for_status().ok()?.text().await.ok()
}

/// Samples the hot store's gauges on `/metrics` once a second into `into` until aborted.
fn store_sampler(base: String, into: Arc<Mutex<StoreSamples>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(text) = metrics_text(&base).await {
                into.lock().unwrap_or_else(|p| p.into_inner()).add(&text);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// [`processor_outcomes`] once they stop moving and count at least `at_least` messages in all
/// (the processors count a batch once it is committed, after its events are out). Gives up
/// after 10 s with the last scrape.
async fn settled_outcomes(base: &str, at_least: u64) -> Option<[u64; 4]> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = processor_outcomes(base).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = processor_outcomes(base).await?;
        if (now == last && now.iter().sum::<u64>() >= at_least) || Instant::now() >= deadline {
            return Some(now);
        }
        last = now;
    }
}

/// What the processors counted between two scrapes, by outcome; null when either is missing.
fn outcome_counts(before: Option<[u64; 4]>, after: Option<[u64; 4]>) -> serde_json::Value {
    match (before, after) {
        (Some(b), Some(a)) => {
            OUTCOMES.iter().zip(a.iter().zip(b)).map(|(o, (a, b))| (o.to_string(), json!(a.saturating_sub(b)))).collect()
        }
        _ => json!(null),
    }
}

/// Runs one scenario and returns its report.
pub async fn run(opts: Options) -> Result<Report> {
    let target = match (&opts.url, &opts.brokers) {
        (Some(url), Some(brokers)) => target::remote(url, brokers, &opts.tenants)?,
        (None, None) => {
            let binary = match &opts.binary {
                Some(b) => b.clone(),
                None => target::default_binary()?,
            };
            eprintln!("starting {} with {} tenants in {}", binary.display(), opts.workload.tenants, opts.data_dir.display());
            let dir = opts.data_dir.clone();
            let (tenants, partitions, env) = (opts.workload.tenants.max(1), opts.partitions, opts.pipeline_env.clone());
            tokio::task::spawn_blocking(move || target::spawn(&binary, &dir, tenants, partitions, &env)).await??
        }
        _ => bail!("--url and --brokers go together"),
    };
    warm_up(&target).await?;
    eprintln!("pipeline ready at {} (kafka {})", target.base, target.bootstrap);

    let raw_rate = if opts.raw_messages > 0 && (opts.scenario == Scenario::Raw || opts.url.is_none()) {
        let (t, o) = (&target, &opts);
        let r = tokio::task::block_in_place(|| raw(t, o))?;
        eprintln!("  raw ceiling: {r:.0} messages/s");
        Some(r)
    } else {
        None
    };
    if opts.scenario == Scenario::Raw {
        return Ok(Report {
            scenario: "raw".into(),
            accepted_per_s: 0.0,
            applied_per_s: 0.0,
            raw_consume_per_s: raw_rate,
            pipeline_over_raw: None,
            lost: 0,
            cpu_s_per_1k: None,
            peak_rss_mb: None,
            latency_ms: json!({}),
            max_sustained_per_s: None,
            details: json!({"raw_messages": opts.raw_messages}),
        });
    }

    // The processors' count the run's "before" must reach: what they had counted before the
    // preload (a pipeline given by `--url` may hold earlier runs' messages) plus the preload's.
    let (preloaded_invoices, counted_after_preload) = if opts.preload.is_zero() {
        (0, 0)
    } else {
        let before = processor_outcomes(&target.base).await.map_or(0, |o| o.iter().sum::<u64>());
        let (invoices, items) = preload(&target, &opts).await?;
        (invoices, before + items)
    };

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let watcher = Watcher::start(&target.bootstrap, &opts.events_topic, ledger.clone())?;
    let driver = Arc::new(Driver::new(opts.driver, &target, ledger.clone())?);
    let mut workload = Workload::new(opts.workload.clone());
    let cpu_before = target.pid.and_then(target::proc_stats);
    let threads_before = target.pid.and_then(|p| target::threads_cpu_s(&p.to_string()));
    let (own_before, broker_before) = (target::proc_stats(std::process::id()), target.broker_cpu_s());
    // The preload's events were all seen, but the processors count a batch once committed, and
    // the committer may still be a few batches behind its events (a commit slower than the
    // 200 ms between two scrapes once let the preload's last ~5,800 messages count in the
    // run's outcomes).
    let outcomes_before = settled_outcomes(&target.base, counted_after_preload).await;
    let started = Instant::now();
    let latency_from_ms = crate::observe::now_ms() + opts.warmup.as_millis() as i64;
    watcher.seen.lock().unwrap_or_else(|p| p.into_inner()).latency_from_ms = latency_from_ms;
    driver.sent.lock().unwrap_or_else(|p| p.into_inner()).latency_from_ms = latency_from_ms;
    let ticker = ticker(started, Duration::from_secs(1), &driver);
    let store = Arc::new(Mutex::new(StoreSamples::default()));
    let sampler = store_sampler(target.base.clone(), store.clone());

    let mut max_sustained = None;
    // `max`: every step, as run.
    let mut steps: Vec<Value> = Vec::new();
    let mut query: Option<QueryStats> = None;
    let offered;
    let drive_secs;
    match opts.scenario {
        Scenario::Steady | Scenario::Raw => {
            offered = driver.run(&mut workload, opts.rate, opts.duration, opts.batch, opts.concurrency, opts.max_backlog).await;
            drive_secs = started.elapsed().as_secs_f64();
        }
        Scenario::Query => {
            let keys = target.tenants.iter().map(|t| t.api_key.clone()).collect();
            let (reads, writes) = tokio::join!(
                query_load(target.base.clone(), keys, driver.clone(), &opts),
                driver.run(&mut workload, opts.rate, opts.duration, opts.batch, opts.concurrency, opts.max_backlog),
            );
            offered = writes;
            drive_secs = started.elapsed().as_secs_f64();
            query = Some(reads?);
        }
        Scenario::Max => {
            let mut rate = opts.start_rate.max(100.0);
            let mut total = 0;
            // The lowest rate that failed, once one has; refining steps left.
            let (mut failed_at, mut refine): (Option<f64>, u32) = (None, opts.refine);
            loop {
                let step_start = Instant::now();
                let resolved_before = ledger.lock().unwrap_or_else(|p| p.into_inner()).resolved();
                let hist_before = watcher.seen.lock().unwrap_or_else(|p| p.into_inner()).latency_us.clone();
                let to_resolve_before = workload.generated.to_resolve();
                let offered = driver.run(&mut workload, rate, opts.step, opts.batch, opts.concurrency, opts.max_backlog).await;
                total += offered;
                let secs = step_start.elapsed().as_secs_f64();
                let (resolved, backlog) = {
                    let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                    (l.resolved() - resolved_before, l.unresolved())
                };
                // Its items but retries and refusals: about 1.7 % fewer in the default workload.
                let to_resolve = workload.generated.to_resolve() - to_resolve_before;
                let mut step_hist = watcher.seen.lock().unwrap_or_else(|p| p.into_inner()).latency_us.clone();
                let _ = step_hist.subtract(&hist_before);
                let p99_ms = step_hist.value_at_quantile(0.99) as f64 / 1000.0;
                // Judged on the figures as reported, so a reader of the report can redo it: the
                // driver kept the pace (the gateway acknowledged in time, the backlog did not
                // hold it back), the pipeline resolved what the step gave it, the backlog and
                // the latency stayed bounded.
                let (step_rate, applied_rate) = (rate.round(), (resolved as f64 / secs).round());
                let offered_rate = (offered as f64 / opts.step.as_secs_f64()).round();
                let applied_share = (resolved as f64 / to_resolve.max(1) as f64 * 1000.0).round() / 1000.0;
                let ok = offered_rate >= opts.min_applied * step_rate
                    && applied_share >= opts.min_applied
                    && (backlog as f64) < MAX_STEP_BACKLOG_S * step_rate
                    && p99_ms <= opts.max_p99.as_secs_f64() * 1000.0;
                let verdict = if ok { "passed" } else { "failed" };
                eprintln!(
                    "  step {rate:.0}/s: sent {offered_rate:.0}/s, applied {applied_rate:.0}/s ({:.1} % of its commands), backlog {backlog}, p99 ingest→applied {p99_ms:.1} ms: {verdict}",
                    applied_share * 100.0
                );
                steps.push(json!({
                    "rate": step_rate,
                    "offered_per_s": offered_rate,
                    "applied_per_s": applied_rate,
                    "applied_share": applied_share,
                    "backlog": backlog,
                    "p99_ingest_to_applied_ms": p99_ms,
                    "passed": ok,
                    "refining": failed_at.is_some(),
                }));
                if ok {
                    max_sustained = Some(step_rate);
                } else {
                    failed_at = Some(step_rate);
                }
                let (Some(passed), Some(failed)) = (max_sustained, failed_at) else {
                    if failed_at.is_some() {
                        break; // the first step failed: nothing below it was tried
                    }
                    rate *= 1.3;
                    continue;
                };
                if refine == 0 {
                    break;
                }
                refine -= 1;
                if !ok {
                    // The next step starts from an empty backlog, as a ramp step would.
                    eprintln!("  draining the backlog before the next step");
                    if settle(&ledger, opts.settle_timeout).await.1 > 0 {
                        break; // commands went missing: the loss check below reports them
                    }
                }
                rate = (passed * failed).sqrt();
            }
            offered = total;
            drive_secs = started.elapsed().as_secs_f64();
        }
    }
    let (last_resolution, lost) = settle(&ledger, opts.settle_timeout).await;
    ticker.abort();
    let cpu_after = target.pid.and_then(target::proc_stats);
    let threads_after = target.pid.and_then(|p| target::threads_cpu_s(&p.to_string()));
    sampler.abort();
    // Once more, for the sizes the store ended with.
    if let Some(text) = metrics_text(&target.base).await {
        store.lock().unwrap_or_else(|p| p.into_inner()).add(&text);
    }
    let (own_after, broker_after) = (target::proc_stats(std::process::id()), target.broker_cpu_s());
    // Messages, not distinct commands: a retry is a message of its own, counted a duplicate.
    let accepted_items = driver.sent.lock().unwrap_or_else(|p| p.into_inner()).accepted_items;
    let outcomes_after = match outcomes_before {
        Some(b) => settled_outcomes(&target.base, b.iter().sum::<u64>() + accepted_items).await,
        None => None,
    };

    let s = driver.sent.lock().unwrap_or_else(|p| p.into_inner());
    let seen = watcher.seen.lock().unwrap_or_else(|p| p.into_inner());
    let (accepted, unmatched_events) = {
        let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        (l.accepted(), l.unmatched())
    };
    // From the start to the last command applied, and never shorter than the driving.
    let applied_secs = last_resolution.duration_since(started).as_secs_f64().max(drive_secs).max(1e-3);
    let applied_per_s = (accepted - lost) as f64 / applied_secs;
    // CPU seconds per 1,000 accepted commands between two readings, to 0.1 ms (0.1 µs per
    // command).
    let per_1k = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(a), Some(b)) if accepted > 0 => Some(((b - a) / accepted as f64 * 1000.0 * 10_000.0).round() / 10_000.0),
        _ => None,
    };
    let cpu_s_per_1k = per_1k(cpu_before.map(|c| c.0), cpu_after.map(|c| c.0));
    let broker_cpu_s_per_1k = per_1k(broker_before, broker_after);
    // This process but the broker it hosts: the driver, the watcher, their Kafka clients.
    let harness_cpu_s_per_1k = per_1k(
        own_before.map(|c| c.0 - broker_before.unwrap_or(0.0)),
        own_after.map(|c| c.0 - broker_after.unwrap_or(0.0)),
    );
    // The pipeline's CPU split by thread name: what each part of it cost per command.
    let by_thread = match (threads_before, threads_after, cpu_before, cpu_after) {
        (Some(before), Some(after), Some((process_before, _)), Some((process_after, _))) => {
            let used = target::cpu_by_thread(&before, &after, process_after - process_before);
            json!(used.into_iter().map(|(name, s)| (name, per_1k(Some(0.0), Some(s)))).collect::<BTreeMap<_, _>>())
        }
        _ => Value::Null,
    };
    Ok(Report {
        scenario: format!("{:?}", opts.scenario).to_lowercase(),
        accepted_per_s: (s.accepted_items as f64 / drive_secs).round(),
        applied_per_s: applied_per_s.round(),
        raw_consume_per_s: raw_rate.map(f64::round),
        pipeline_over_raw: raw_rate.map(|r| (applied_per_s / r * 1000.0).round() / 1000.0),
        lost,
        cpu_s_per_1k,
        peak_rss_mb: cpu_after.map(|(_, m)| m.round()),
        latency_ms: Report::latency(&s.ack_us, &seen.latency_us, query.as_ref().map(|q| (&q.lookup_us, &q.list_us))),
        max_sustained_per_s: max_sustained,
        details: json!({
            "driver": format!("{:?}", opts.driver),
            "offered": offered,
            "accepted_commands": accepted,
            "accepted_items": s.accepted_items,
            "refused_by_gateway": s.refused,
            "failed_requests": s.failed,
            "throttled_requests": s.throttled,
            "preloaded_invoices": preloaded_invoices,
            // `query`: what the readers asked and were answered (null for other scenarios).
            "query": query.as_ref().map(QueryStats::details),
            "max_steps": steps,
            // The rule every step of `max_steps` was judged by.
            "max_rule": if opts.scenario == Scenario::Max {
                json!({
                    "min_applied": opts.min_applied,
                    "max_backlog_s": MAX_STEP_BACKLOG_S,
                    "max_p99_ms": opts.max_p99.as_secs_f64() * 1000.0,
                })
            } else {
                json!(null)
            },
            // How many times the invoices this run added the store held before it.
            "store_fill_ratio": if preloaded_invoices == 0 || workload.generated.invoices == 0 {
                json!(null)
            } else {
                json!((preloaded_invoices as f64 / workload.generated.invoices as f64 * 10.0).round() / 10.0)
            },
            "latency_warmup_s": opts.warmup.as_secs_f64(),
            "generated": {
                "invoices": workload.generated.invoices,
                "retries": workload.generated.retries,
                "invalid_at_gateway": workload.generated.invalid_at_gateway,
                "invalid_in_domain": workload.generated.invalid_in_domain,
            },
            // What the processors did with this run's messages (their counters on `/metrics`,
            // differences over the run): they add up to the accepted items (messages), and with
            // a correct store `duplicate` is the retries, whatever the store already holds.
            "processor_outcomes": outcome_counts(outcomes_before, outcomes_after),
            "unreadable_events": seen.unreadable,
            // The CPU the report's `cpu_s_per_1k` (the pipeline's process) leaves out, on the
            // same cores when the harness started the pipeline: the embedded broker it hosts
            // (null when it hosts none) and its own.
            "cpu_s_per_1k_embedded_broker": broker_cpu_s_per_1k,
            "cpu_s_per_1k_harness": harness_cpu_s_per_1k,
            // `cpu_s_per_1k` by the pipeline's thread names (`/proc/<pid>/task/*/comm`): the
            // committer (`billstream-comm`), the processor (`billstream-proc`), the gateway
            // (`tokio-rt-worker`), fjall's flushes and compactions (`fjall:worker`), librdkafka
            // (`rdk:*`) and the rest; null for a pipeline given by `--url`.
            "cpu_s_per_1k_by_thread": by_thread,
            // The hot store over the run, from the pipeline's `billstream_store_*` gauges
            // sampled once a second: the most level-0 tables each table had at once (each is a
            // filter probe for a point read of an absent key), the most memtables queued for a
            // flush and journal files, the bytes on disk at the end; null without those gauges.
            "store": store.lock().unwrap_or_else(|p| p.into_inner()).details(),
            // Commands seen in events that this run never had accepted: 0 in a clean run.
            "unmatched_events": unmatched_events,
            "drive_s": (drive_secs * 1000.0).round() / 1000.0,
            "rate": opts.rate,
            "batch": opts.batch,
            "concurrency": opts.concurrency,
            "tenants": opts.workload.tenants,
            "seed": opts.workload.seed,
        }),
    })
}

/// What the `query` scenario's readers measured. Only answers with 200 are timed: a lookup of
/// an invoice accepted but not applied yet is a 404 that takes the fast path of a missing key,
/// and an error says nothing about how fast a read is. The counts include the warm-up's
/// requests, the histograms do not.
struct QueryStats {
    /// Point lookups (`GET /v1/invoices/{id}`) that found their invoice.
    lookup_us: Histogram<u64>,
    /// List pages (`GET /v1/invoices?status=&limit=`).
    list_us: Histogram<u64>,
    found: u64,
    not_found: u64,
    lists: u64,
    list_rows: u64,
    /// Answers other than 200 (and 404 to a lookup), and requests that got no answer.
    errors: u64,
}

impl QueryStats {
    fn new() -> Result<Self> {
        let h = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
        Ok(QueryStats { lookup_us: h()?, list_us: h()?, found: 0, not_found: 0, lists: 0, list_rows: 0, errors: 0 })
    }

    fn add(&mut self, o: QueryStats) -> Result<()> {
        self.lookup_us.add(o.lookup_us)?;
        self.list_us.add(o.list_us)?;
        self.found += o.found;
        self.not_found += o.not_found;
        self.lists += o.lists;
        self.list_rows += o.list_rows;
        self.errors += o.errors;
        Ok(())
    }

    fn details(&self) -> Value {
        json!({
            "lookups_found": self.found,
            "lookups_not_found": self.not_found,
            "lists": self.lists,
            "list_rows": self.list_rows,
            "errors": self.errors,
        })
    }
}

/// The statuses a list asks for in turn (`None`: every status).
const LIST_STATUSES: [Option<&str>; 5] = [Some("open"), Some("paid"), None, Some("draft"), Some("void")];

/// The `query` scenario's readers: `opts.query_concurrency` of them, each sending one request
/// after the other for `opts.duration`, each about an invoice the driver has had accepted: of
/// every hundred, `opts.list_pct` ask for the first page of that invoice's tenant's list
/// (`opts.list_limit` invoices, by status in turn), the rest for the invoice itself. Requests
/// issued in the first `opts.warmup` are answered and counted but not timed.
async fn query_load(base: String, keys: Vec<String>, driver: Arc<Driver>, opts: &Options) -> Result<QueryStats> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (duration, warmup, list_pct, list_limit) = (opts.duration, opts.warmup, opts.list_pct, opts.list_limit);
    let mut workers = Vec::new();
    for w in 0..opts.query_concurrency.max(1) {
        let (client, base, keys, driver) = (client.clone(), base.clone(), keys.clone(), driver.clone());
        workers.push(tokio::spawn(async move {
            let mut stats = QueryStats::new()?;
            let (mut i, mut lists) = (w as u64, 0usize);
            while started.elapsed() < duration {
                let pick = {
                    let s = driver.sent.lock().unwrap_or_else(|p| p.into_inner());
                    if s.invoices.is_empty() { None } else { Some(s.invoices[(i.wrapping_mul(2_654_435_761) % s.invoices.len() as u64) as usize].clone()) }
                };
                // A Weyl sequence over 0..100: every run of a hundred requests holds list_pct lists.
                let list = (i.wrapping_mul(61) % 100) < list_pct;
                i += 1;
                let Some((tenant, invoice)) = pick else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let url = if list {
                    lists += 1;
                    let status = LIST_STATUSES[lists % LIST_STATUSES.len()].map(|s| format!("&status={s}")).unwrap_or_default();
                    format!("{base}/v1/invoices?limit={list_limit}{status}")
                } else {
                    format!("{base}/v1/invoices/{invoice}")
                };
                let timed = started.elapsed() >= warmup;
                let t0 = Instant::now();
                let answer = match client.get(url).header("x-api-key", &keys[tenant]).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.ok().map(|body| (status, body))
                    }
                    Err(_) => None,
                };
                let us = (t0.elapsed().as_micros() as u64).max(1);
                match answer {
                    Some((200, body)) if list => {
                        // The page's invoices counted, not built: the harness shares the cores.
                        #[derive(serde::Deserialize)]
                        struct Page {
                            invoices: Vec<serde::de::IgnoredAny>,
                        }
                        match serde_json::from_slice::<Page>(&body) {
                            Ok(Page { invoices: rows }) => {
                                stats.lists += 1;
                                stats.list_rows += rows.len() as u64;
                                if timed {
                                    let _ = stats.list_us.record(us);
                                }
                            }
                            Err(_) => stats.errors += 1,
                        }
                    }
                    Some((200, _)) => {
                        stats.found += 1;
                        if timed {
                            let _ = stats.lookup_us.record(us);
                        }
                    }
                    Some((404, _)) if !list => stats.not_found += 1,
                    _ => stats.errors += 1,
                }
            }
            Ok::<_, anyhow::Error>(stats)
        }));
    }
    let mut total = QueryStats::new()?;
    for w in workers {
        total.add(w.await??)?;
    }
    Ok(total)
}
