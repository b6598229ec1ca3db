//! `billstream`: parse arguments, load configuration, start tracing, run a subcommand.

use anyhow::{Context, Result};
use billstream::config::Config;
use billstream::demo::{self, DemoOptions};
use billstream::pipeline::{Pipeline, open_store};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

// The pipeline allocates per command on every stage; glibc's allocator was a third of the
// CPU profile under load (docs/performance-log.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Multi-tenant invoicing pipeline: HTTP gateway → Kafka → effectively-once processors →
/// hot store.
#[derive(Parser, Debug)]
#[command(name = "billstream", version)]
struct Cli {
    /// TOML configuration file (defaults, then this file, then BILLSTREAM__SECTION__KEY
    /// environment variables, then flags).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (embedded store under <DIR>/hot); overrides `data_dir`.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the whole pipeline on embedded defaults, drive a realistic workload through the
    /// HTTP gateway, wait until it is applied, reconcile, print a summary. The last line is
    /// one JSON object. Uses <data_dir>/demo, cleared first.
    Demo(DemoArgs),
    /// Run the pipeline as a service until SIGINT or SIGTERM (graceful: in-flight batches
    /// finish, offsets are stored). Prints the HTTP address and the Kafka bootstrap address.
    Up(UpArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Number of tenants (the first is split into 4 buckets).
    #[arg(long, default_value_t = 5)]
    tenants: usize,
    /// Number of invoices across all tenants.
    #[arg(long, default_value_t = 2000)]
    invoices: usize,
    /// Seed of the workload, for a reproducible run.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Commands per batch request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Give up waiting for the processors after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

#[derive(Args, Debug)]
struct UpArgs {
    /// Use this Kafka cluster (HOST:PORT[,HOST:PORT...]) instead of the embedded broker.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Partitions of the topics billstream creates.
    #[arg(long)]
    partitions: Option<i32>,
    /// URL of a Confluent-compatible schema registry instead of the embedded catalog.
    #[arg(long, value_name = "URL")]
    schema_registry: Option<String>,
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant; prints its id and API key (only a hash of the key is stored). Works
    /// on the embedded store directly, so run it while `up` is stopped.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Split the tenant across K partition keys (for very large tenants).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
        buckets: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,billstream=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, mut config: Config) -> Result<()> {
    match command {
        Command::Demo(a) => {
            let opts = DemoOptions {
                tenants: a.tenants,
                invoices: a.invoices,
                seed: a.seed,
                batch: a.batch,
                timeout: Duration::from_secs(a.timeout_s),
            };
            let report = demo::run(config, opts).await?;
            println!(
                "sent {} commands: {} applied, {} rejected, {} duplicates ignored, {} to the DLQ; {} invoices, {} payments; {:.0} commands/s; reconciled: {}",
                report.commands_sent, report.commands_applied, report.commands_rejected, report.duplicates, report.dlq,
                report.invoices, report.payments, report.commands_per_s, report.reconciled
            );
            for m in &report.mismatches {
                println!("  mismatch: {m}");
            }
            println!("{}", serde_json::to_string(&report)?);
            if !report.reconciled {
                anyhow::bail!("reconciliation failed");
            }
            Ok(())
        }
        Command::Up(a) => {
            if let Some(b) = a.brokers {
                config.kafka.brokers = b;
            }
            if let Some(l) = a.listen {
                config.http.listen = l;
            }
            if let Some(p) = a.partitions {
                config.kafka.partitions = p;
            }
            if let Some(r) = a.schema_registry {
                config.kafka.schema_registry_url = r;
            }
            config.validate()?;
            let pipeline = Pipeline::start(&config).await?;
            println!("http: http://{}", pipeline.http_addr);
            println!("kafka: {}", pipeline.bootstrap);
            println!("store: {}", config.store_dir().display());
            wait_for_signal().await?;
            eprintln!("shutting down: finishing in-flight batches");
            pipeline.shutdown().await?;
            eprintln!("stopped");
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name, buckets }) => {
            let store = open_store(&config).context("opening the hot store (is `billstream up` running on it?)")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
            let (tenant, key) = billstream_ingest::auth::create_tenant(store.as_ref(), &name, buckets, now).await?;
            println!("tenant_id: {}", tenant.tenant_id);
            println!("api_key: {key}");
            println!("buckets: {}", tenant.buckets);
            Ok(())
        }
    }
}

async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
