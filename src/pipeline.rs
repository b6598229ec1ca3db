//! Wires the components into one running pipeline: broker (embedded or external), hot store,
//! processor, gateway. Used by `up`, `demo` and the black-box tests.

use crate::broker::{EmbeddedBroker, ensure_topics};
use crate::config::Config;
use anyhow::{Context, Result};
use billstream_ingest::auth::KeyCache;
use billstream_ingest::metrics::GatewayMetrics;
use billstream_ingest::producer::CommandProducer;
use billstream_ingest::server::Backlog;
use billstream_ingest::{Gateway, GatewayConfig};
use billstream_processors::consumer::{self, ProcessorConfig, ProcessorDeps, ProcessorHandle};
use billstream_processors::metrics::{ProcessorMetrics, StoreMetrics};
use billstream_processors::outcome::OutcomeHub;
use billstream_processors::store::{FjallConfig, FjallStore};
use billstream_processors::HotStore;
use billstream_schemas::SchemaCatalog;
use billstream_schemas::topics;
use prometheus::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Opens the embedded hot store of a configuration.
pub fn open_store(config: &Config) -> Result<Arc<FjallStore>> {
    let mut fc = FjallConfig::new(config.store_dir());
    fc.sync_commits = config.store.sync_commits;
    fc.cache_bytes = config.store.cache_mb << 20;
    Ok(Arc::new(FjallStore::open(&fc)?))
}

/// Bytes the processors may fall behind before the gateway answers 503: as configured, or
/// for the embedded broker (which keeps 5 MiB per partition and drops older messages) 4 MiB,
/// so that not even a backlog all on one partition can be dropped.
fn backlog_limit(config: &Config) -> Option<u64> {
    match config.http.max_backlog_bytes {
        Some(0) => None,
        Some(n) => Some(n),
        None if config.kafka.brokers.is_empty() => Some(4 << 20),
        None => None,
    }
}

/// A running pipeline.
pub struct Pipeline {
    /// Where the gateway listens.
    pub http_addr: SocketAddr,
    /// Kafka bootstrap servers in use.
    pub bootstrap: String,
    /// The hot store.
    pub store: Arc<dyn HotStore>,
    /// Schema catalog in use.
    pub catalog: Arc<SchemaCatalog>,
    /// All metrics of this process.
    pub registry: Registry,
    /// The processors' metrics (the demo watches them).
    pub processor_metrics: ProcessorMetrics,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    processor: ProcessorHandle,
    broker: Option<EmbeddedBroker>,
}

impl Pipeline {
    /// Starts everything; returns once the gateway listens and the processor is subscribed.
    pub async fn start(config: &Config) -> Result<Pipeline> {
        let broker = if config.kafka.brokers.is_empty() {
            Some(EmbeddedBroker::start(1, config.kafka.partitions)?)
        } else {
            ensure_topics(&config.kafka.brokers, config.kafka.partitions, config.kafka.replication_factor).await?;
            None
        };
        let bootstrap = broker.as_ref().map_or_else(|| config.kafka.brokers.clone(), |b| b.bootstrap().to_string());

        let fjall = open_store(config)?;
        let catalog = Arc::new(if config.kafka.schema_registry_url.is_empty() {
            SchemaCatalog::embedded()
        } else {
            SchemaCatalog::with_registry(&config.kafka.schema_registry_url).await?
        });
        let registry = Registry::new();
        let processor_metrics = ProcessorMetrics::new(&registry)?;
        StoreMetrics::register(&registry, fjall.clone())?;
        let store: Arc<dyn HotStore> = fjall;
        let hub = Arc::new(OutcomeHub::new());
        let (shutdown, shutdown_rx) = watch::channel(false);

        let mut pc = ProcessorConfig::new(&bootstrap);
        pc.group_id = config.kafka.group_id.clone();
        pc.max_batch = config.processor.max_batch;
        pc.linger = config.processor.linger;
        pc.session_timeout = config.kafka.session_timeout;
        let deps = ProcessorDeps {
            store: store.clone(),
            catalog: catalog.clone(),
            metrics: processor_metrics.clone(),
            hub: hub.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let processor = tokio::task::spawn_blocking(move || consumer::spawn(pc, deps, shutdown_rx))
            .await
            .context("starting the processor")??;

        let gateway = Arc::new(Gateway {
            store: store.clone(),
            catalog: catalog.clone(),
            producer: CommandProducer::new(&bootstrap, topics::COMMANDS, &[])?,
            hub: Some(hub),
            config: GatewayConfig {
                max_body_bytes: config.http.max_body_bytes,
                max_batch_commands: config.http.max_batch_commands,
                wait_timeout: config.http.wait_timeout,
                ..GatewayConfig::default()
            },
            metrics: GatewayMetrics::new(&registry)?,
            registry: registry.clone(),
            keys: KeyCache::default(),
            backlog: backlog_limit(config).map(|max_bytes| {
                let consumed = processor_metrics.consumed_bytes.clone();
                Backlog { produced: Default::default(), consumed: Box::new(move || consumed.get()), max_bytes }
            }),
        });
        let listener = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("binding the HTTP gateway to {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let mut rx = shutdown.subscribe();
        let server = tokio::spawn(billstream_ingest::serve(listener, gateway, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }));
        Ok(Pipeline { http_addr, bootstrap, store, catalog, registry, processor_metrics, shutdown, server, processor, broker })
    }

    /// Waits until the consumer group gave the processor its partitions (a new group waits
    /// out the broker's initial rebalance delay; a restarted one, the session timeout of
    /// the member it replaces). False on timeout.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        self.processor.wait_assigned(timeout).await
    }

    /// Graceful stop: the gateway stops accepting and finishes in-flight requests, the
    /// processor finishes its batch and stores its offsets, then the broker stops.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await.context("gateway task")??;
        self.processor.stopped().await?;
        drop(self.broker);
        Ok(())
    }
}
