//! The embedded broker (librdkafka's in-process mock cluster) and topic creation on a real
//! cluster.
//!
//! The mock cluster speaks the Kafka protocol on loopback ports, so every client — this
//! process's, or an outside producer given the bootstrap address — uses the real protocol.
//! It keeps everything in memory: a restart starts an empty cluster with a new cluster id,
//! which the processors notice (stored offsets are per cluster id).

use anyhow::{Context, Result, anyhow};
use billstream_schemas::topics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The three topics billstream uses.
pub const TOPICS: [&str; 3] = [topics::COMMANDS, topics::EVENTS, topics::DLQ];

/// A running embedded broker; stops when dropped.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a mock cluster of `brokers` brokers with billstream's topics of `partitions`
    /// partitions each.
    pub fn start(brokers: i32, partitions: i32) -> Result<Self> {
        Self::start_with_topics(brokers, partitions, &[])
    }

    /// As [`Self::start`], with more topics of the same shape (the load harness's scratch
    /// topic, say).
    pub fn start_with_topics(brokers: i32, partitions: i32, extra: &[&str]) -> Result<Self> {
        let topics: Vec<String> = TOPICS.iter().chain(extra).map(|t| t.to_string()).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // The mock cluster is not Send: it lives and dies on a thread of its own.
        let thread = std::thread::Builder::new().name("billstream-embedded-broker".into()).spawn(move || {
            let cluster = match MockCluster::new(brokers) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for t in &topics {
                if let Err(e) = cluster.create_topic(t, partitions, brokers.min(3)) {
                    let _ = ready_tx.send(Err(format!("creating {t}: {e}")));
                    return;
                }
            }
            let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
            let _ = stop_rx.recv();
            drop(cluster);
        })?;
        let bootstrap = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("embedded broker did not start within 30 s"))?
            .map_err(|e| anyhow!("embedded broker: {e}"))?;
        Ok(EmbeddedBroker { bootstrap, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// Bootstrap servers of the embedded cluster.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates billstream's topics on an external cluster when they do not exist yet (existing
/// topics are left as they are, so a cluster where billstream may not create topics works
/// once an operator created them).
pub async fn ensure_topics(brokers: &str, partitions: i32, replication: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating Kafka admin client")?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .with_context(|| format!("reading topic metadata from {brokers}"))?;
    let existing: Vec<&str> = metadata.topics().iter().filter(|t| !t.partitions().is_empty()).map(|t| t.name()).collect();
    let new: Vec<NewTopic<'_>> = TOPICS
        .iter()
        .filter(|t| !existing.contains(t))
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let results = admin
        .create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))))
        .await
        .with_context(|| format!("creating topics on {brokers}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(anyhow!("creating topic {topic} on {brokers}: {code}")),
        }
    }
    Ok(())
}
