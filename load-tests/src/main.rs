//! `billstream-load <scenario> [flags]`: measure a billstream pipeline.

use anyhow::Result;
use billstream_load::drive::DriverKind;
use billstream_load::scenario::{self, Options, Scenario};
use billstream_load::workload::WorkloadConfig;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Drives a billstream pipeline with a seeded workload and reports throughput, latency,
/// CPU and memory. Starts `billstream up` itself on the embedded store (against a broker it
/// owns) unless --url and --brokers name a running one. Exits 1 when any accepted command
/// was never applied.
#[derive(Parser, Debug)]
#[command(name = "billstream-load", version)]
struct Cli {
    /// steady: a rate for a duration; max: ramp until latency or backlog diverges, then narrow
    /// the gap (--refine); query: point lookups and lists under write load; raw: the broker's ceiling
    /// with no processing.
    #[arg(value_enum)]
    scenario: Scenario,
    /// How commands are sent.
    #[arg(long, value_enum, default_value = "http-batch")]
    driver: DriverKind,
    /// Target commands/s (0: as fast as the concurrency allows). For query: the write rate.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to drive, e.g. 30s. A fresh store's compaction catches up with its writes
    /// only after about 30 s, so shorter runs read above what the pipeline sustains
    /// (docs/performance-log.md); hence 60 s.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Commands per batch request (whole invoice lifecycles).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Tenants (sizes Zipf-skewed).
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Zipf exponent of tenant sizes.
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percent of invoices followed by an invalid command.
    #[arg(long, default_value_t = 1)]
    invalid_pct: u64,
    /// Percent of payments retried with the same idempotency key.
    #[arg(long, default_value_t = 5)]
    retry_pct: u64,
    /// Spread issue dates over this many past years (history mode).
    #[arg(long, default_value_t = 0)]
    history_years: u32,
    /// Messages of the raw ceiling measured before the run (0: skip). A million take about
    /// 3 s; with 200,000 (under a second) repeat runs scattered between 280,000 and 830,000
    /// messages/s.
    #[arg(long, default_value_t = 1_000_000)]
    raw_messages: usize,
    /// After driving stops, wait for accepted commands to be applied until this long passes
    /// without one more being applied; what is still missing then counts as lost.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    settle_timeout: Duration,
    /// Before measuring, drive the same workload (other ids) flat out for this long, unmeasured,
    /// and wait until it is applied: the run then meets a fuller store. A duration (600s) or a
    /// multiple of --duration (10x): a flat-out run after a 10x preload meets a store holding
    /// about 10x the invoices it adds (the report's details give both counts and their ratio,
    /// `store_fill_ratio`)
    #[arg(long, default_value = "0s", value_parser = parse_preload)]
    preload: Preload,
    /// Keep commands issued in the run's first this-long out of the latency histograms
    /// (connections, caches and the store warming up). They are still driven, counted in the
    /// rates and checked for loss. The report's details carry it as `latency_warmup_s`
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// The billstream binary to start (default: the one next to this binary).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Data directory of the started pipeline; cleared first.
    #[arg(long, default_value = "./data/load")]
    data_dir: PathBuf,
    /// Partitions of the started pipeline's topics.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Environment for the started pipeline, KEY=VALUE (e.g. BILLSTREAM__PROCESSOR__MAX_BATCH=2000).
    #[arg(long = "pipeline-env", value_parser = parse_env)]
    pipeline_env: Vec<(String, String)>,
    /// Gateway of a running pipeline (with --brokers and --tenant).
    #[arg(long)]
    url: Option<String>,
    /// Kafka bootstrap servers of a running pipeline.
    #[arg(long)]
    brokers: Option<String>,
    /// TENANT_ID:API_KEY of a running pipeline's tenant (repeat).
    #[arg(long = "tenant")]
    tenant_keys: Vec<String>,
    /// Topic where outcomes are observed.
    #[arg(long, default_value = "billing.events")]
    events_topic: String,
    /// max: the first step's rate.
    #[arg(long, default_value_t = 10_000.0)]
    start_rate: f64,
    /// max: length of each step.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    step: Duration,
    /// max: a step fails when its p99 ingest→applied exceeds this.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    max_p99: Duration,
    /// max: after the first failing step, this many more steps halve the gap (geometrically)
    /// between the highest rate that passed and the lowest that failed; a step after a failed
    /// one waits for the backlog to drain. The ramp's steps are 1.3x apart; 2 narrows the
    /// result to ~7 %.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// max: a step passes only if the driver sent at least this share of its rate and the
    /// pipeline resolved at least this share of the step's commands (what it left grew the
    /// backlog). Until 2026-11-26 the rule was "applied at least 90 % of the rate", which
    /// passed steps whose backlog grew by almost a tenth of what they sent.
    #[arg(long, default_value_t = 0.97, value_parser = parse_share)]
    min_applied: f64,
    /// query: read requests in flight.
    #[arg(long, default_value_t = 4)]
    query_concurrency: usize,
    /// query: of every hundred read requests, how many are a page of a tenant's invoice list
    /// (by status in turn); the rest are point lookups by id.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    list_pct: u64,
    /// query: invoices per list page, 1 to 500 (the API's default page size is 50, its
    /// largest 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    list_limit: u16,
    /// Pause sending while more accepted commands than this are unresolved (0: never). The
    /// gateway holds back by itself; the kafka driver needs this with the embedded broker,
    /// which drops what a lagging processor has not read.
    #[arg(long, default_value_t = 20_000)]
    max_backlog: u64,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

// The harness shares the machine with the pipeline it measures: spend as little as it can.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_duration(s: &str) -> Result<Duration, String> {
    billstream::config::parse_duration(s)
}

/// `--min-applied`: a share, from 0 to 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a share from 0 to 1 (0.97: 97 %), got {s:?}")),
    }
}

/// `--preload`: a duration, or a multiple of `--duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Preload {
    For(Duration),
    Times(u32),
}

impl Preload {
    fn resolve(self, duration: Duration) -> Duration {
        match self {
            Preload::For(d) => d,
            Preload::Times(n) => duration * n,
        }
    }
}

fn parse_preload(s: &str) -> Result<Preload, String> {
    match s.trim().strip_suffix('x') {
        Some(n) => n.parse().map(Preload::Times).map_err(|_| format!("expected a whole multiple like \"10x\", got {s:?}")),
        None if s.trim() == "0" => Ok(Preload::For(Duration::ZERO)),
        None => parse_duration(s).map(Preload::For),
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let run_id = format!("L{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let opts = Options {
        scenario: cli.scenario,
        driver: cli.driver,
        rate: cli.rate,
        duration: cli.duration,
        batch: cli.batch,
        concurrency: cli.concurrency,
        workload: WorkloadConfig {
            tenants: cli.tenants,
            skew: cli.skew,
            seed: cli.seed,
            invalid_pct: cli.invalid_pct,
            retry_pct: cli.retry_pct,
            history_years: cli.history_years,
            run_id,
        },
        raw_messages: cli.raw_messages,
        settle_timeout: cli.settle_timeout,
        preload: cli.preload.resolve(cli.duration),
        warmup: cli.warmup,
        binary: cli.binary,
        data_dir: cli.data_dir,
        partitions: cli.partitions,
        pipeline_env: cli.pipeline_env,
        url: cli.url,
        brokers: cli.brokers,
        tenants: cli.tenant_keys,
        events_topic: cli.events_topic,
        start_rate: cli.start_rate,
        step: cli.step,
        max_p99: cli.max_p99,
        refine: cli.refine,
        min_applied: cli.min_applied,
        query_concurrency: cli.query_concurrency,
        list_pct: cli.list_pct,
        list_limit: usize::from(cli.list_limit),
        max_backlog: cli.max_backlog,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = runtime.block_on(scenario::run(opts))?;
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &cli.json {
        std::fs::write(path, &json)?;
    }
    println!("{json}");
    drop(runtime);
    if report.lost > 0 {
        eprintln!("LOST: {} accepted commands were never applied", report.lost);
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_is_a_duration_or_a_multiple_of_the_run() {
        let run = Duration::from_secs(60);
        assert_eq!(parse_preload("10x").map(|p| p.resolve(run)), Ok(Duration::from_secs(600)));
        assert_eq!(parse_preload("200s").map(|p| p.resolve(run)), Ok(Duration::from_secs(200)));
        assert_eq!(parse_preload("0").map(|p| p.resolve(run)), Ok(Duration::ZERO));
        let err = parse_preload("2.5x").expect_err("a fraction is refused");
        assert!(err.contains("whole multiple") && err.contains("2.5x"), "{err}");
        assert!(parse_preload("10").expect_err("a bare number is refused").contains("unit"));
    }

    #[test]
    fn min_applied_is_a_share() {
        assert_eq!(parse_share("0.97"), Ok(0.97));
        assert_eq!(parse_share("1"), Ok(1.0));
        for bad in ["97", "-0.1", "97%", "NaN"] {
            let err = parse_share(bad).expect_err(bad);
            assert!(err.contains("share from 0 to 1") && err.contains(bad), "{err}");
        }
    }
}
