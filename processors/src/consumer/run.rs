//! The Kafka loop, on a thread of its own.
//!
//! Per batch: poll up to `max_batch` messages (or until `linger` after the first), drop
//! those below the stored offset (replays after a crash), apply, publish events and DLQ
//! records and wait for the broker's acks, then commit state and offsets to the store in one
//! atomic write. Only then are Kafka offsets committed, as a hint. A crash anywhere replays
//! from the store's offset, and derived ids make the replay emit the same events.
//!
//! Two threads share the work: the processor thread polls and applies; a committer thread
//! publishes and commits, in batch order. So batch N+1 is applied (over what N changed,
//! see [`Applier`]) while N is published and made durable, and N+1's events are on their way
//! to the broker while N is committed. A batch whose commit fails is never followed by a
//! later one: the committer stops at the first failure.
//!
//! On assignment the consumer starts each partition at the offset the store holds for this
//! cluster (a new cluster, such as a fresh embedded broker, starts from the beginning), after
//! waiting for the batches in flight to be committed.

use super::apply::{Applier, ApplyError, BatchOutput, RawMessage};
use super::config::ProcessorConfig;
use crate::metrics::ProcessorMetrics;
use crate::outcome::OutcomeHub;
use crate::publish::{Batch, BatchProducer, Record};
use crate::store::HotStore;
use billstream_schemas::SchemaCatalog;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// What the processor needs besides its config.
#[derive(Clone)]
pub struct ProcessorDeps {
    /// The hot store.
    pub store: Arc<dyn HotStore>,
    /// Schema ids and codecs.
    pub catalog: Arc<SchemaCatalog>,
    /// Metrics.
    pub metrics: ProcessorMetrics,
    /// Where resolved commands are announced.
    pub hub: Arc<OutcomeHub>,
    /// Runtime on which store and producer futures are driven.
    pub runtime: Handle,
}

/// Why the processor stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The cluster did not answer with its id.
    #[error("kafka cluster at {0} did not report its cluster id")]
    NoClusterId(String),
}

/// A running processor.
pub struct ProcessorHandle {
    done: tokio::sync::oneshot::Receiver<Result<(), ProcessorError>>,
    assigned: watch::Receiver<bool>,
}

impl ProcessorHandle {
    /// Waits until the consumer group assigned partitions to this processor (a new group
    /// waits out the broker's initial rebalance delay, 3 s by default). False on timeout.
    pub async fn wait_assigned(&self, timeout: Duration) -> bool {
        let mut rx = self.assigned.clone();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|a| *a)).await, Ok(Ok(_)))
    }

    /// Waits until the processor thread has stopped (after shutdown, or on a fatal error).
    pub async fn stopped(self) -> Result<(), ProcessorError> {
        self.done.await.unwrap_or(Ok(()))
    }
}

/// Partition positions known to this consumer: next offset per partition.
type Positions = Arc<Mutex<HashMap<i32, i64>>>;

/// How far the committer got with the batches handed to it.
#[derive(Default)]
struct Progress {
    state: Mutex<CommitState>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct CommitState {
    /// Sequence number of the last batch handed to the committer.
    handed_over: u64,
    /// Sequence number of the last batch committed.
    committed: u64,
    /// The committer gave up (shutdown during a failing publish or commit).
    stopped: bool,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut CommitState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_all();
    }

    fn get(&self) -> CommitState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every batch handed over is committed or the committer stopped.
    fn drain(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.committed < st.handed_over && !st.stopped {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct ProcessorContext {
    store: Arc<dyn HotStore>,
    runtime: Handle,
    cluster_id: String,
    topic: String,
    positions: Positions,
    assigned: watch::Sender<bool>,
    progress: Arc<Progress>,
}

impl ClientContext for ProcessorContext {}

impl ConsumerContext for ProcessorContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The store's offsets must include every batch already applied.
                self.progress.drain();
                let stored = match self.runtime.block_on(self.store.partition_offsets(&self.cluster_id, &self.topic)) {
                    Ok(s) => s,
                    Err(e) => {
                        // Starting from the beginning is slow but correct: every command id
                        // already applied is recognised and skipped.
                        error!(error = %e, "reading stored offsets failed; replaying assigned partitions from the start");
                        Default::default()
                    }
                };
                let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for p in partitions {
                    let next = stored.get(&p).copied();
                    positions.insert(p, next.unwrap_or(0));
                    let offset = next.map(Offset::Offset).unwrap_or(Offset::Beginning);
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                        warn!(partition = p, error = %e, "could not set start offset");
                    }
                }
                drop(positions);
                info!(partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
                match consumer.assign(tpl) {
                    Ok(()) => {
                        self.assigned.send_replace(true);
                    }
                    Err(e) => error!(error = %e, "assign failed"),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Finish what was read from these partitions before another member takes them.
                self.progress.drain();
                let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
                for elem in tpl.elements() {
                    positions.remove(&elem.partition());
                }
                info!("partitions revoked");
                self.assigned.send_replace(false);
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "unassign failed");
                }
            }
            other => {
                warn!(error = ?other, "rebalance error; dropping assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

fn client_config(config: &ProcessorConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.kafka_overrides {
        c.set(k, v);
    }
    c
}

/// Starts the processor on its own thread; it runs until `shutdown` turns true.
pub fn spawn(config: ProcessorConfig, deps: ProcessorDeps, shutdown: watch::Receiver<bool>) -> Result<ProcessorHandle, ProcessorError> {
    // Ask the cluster for its id first: stored offsets are only meaningful for the cluster
    // they were read from.
    let probe: BaseConsumer = client_config(&config).set("group.id", &config.group_id).create()?;
    let cluster_id = probe
        .client()
        .fetch_cluster_id(Duration::from_secs(30))
        .ok_or_else(|| ProcessorError::NoClusterId(config.brokers.clone()))?;
    drop(probe);

    let positions: Positions = Arc::default();
    let progress: Arc<Progress> = Arc::default();
    let (assigned_tx, assigned) = watch::channel(false);
    let context = ProcessorContext {
        assigned: assigned_tx,
        progress: progress.clone(),
        store: deps.store.clone(),
        runtime: deps.runtime.clone(),
        cluster_id: cluster_id.clone(),
        topic: config.commands_topic.clone(),
        positions: positions.clone(),
    };
    let consumer: BaseConsumer<ProcessorContext> = client_config(&config)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
        .set("fetch.wait.max.ms", "5")
        .set("queued.min.messages", "200000")
        .create_with_context(context)?;
    let producer = BatchProducer::new(client_config(&config)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000"))?;
    // Look the output topics up before the first batch: otherwise the first publish waits
    // for the metadata round trip (measured: the first batch's publish took 26-35 ms instead
    // of 2). A topic that does not exist yet is created or reported on first use, as before.
    for topic in [&config.events_topic, &config.dlq_topic] {
        if let Err(e) = producer.inner().client().fetch_metadata(Some(topic), Duration::from_secs(5)) {
            warn!(topic, error = %e, "output topic metadata not available yet");
        }
    }
    consumer.subscribe(&[&config.commands_topic])?;
    info!(cluster_id, topic = %config.commands_topic, group = %config.group_id, "processor started");

    let consumer = Arc::new(consumer);

    let (tx, done) = tokio::sync::oneshot::channel();
    let applier = Applier::new(deps.store.clone(), deps.catalog.clone(), cluster_id, config.commands_topic.clone());
    // One batch waits here while the committer commits another and has a third's records in
    // flight (see `Committer::run`): the applier runs at most three batches ahead.
    let (to_commit, applied) = std::sync::mpsc::sync_channel(1);
    let (spent_tx, spent) = std::sync::mpsc::channel();
    let committer = Committer {
        spent: spent_tx,
        config: config.clone(),
        deps: deps.clone(),
        producer,
        consumer: consumer.clone(),
        shutdown: shutdown.clone(),
        progress: progress.clone(),
    };
    let stop_lag = Arc::new(AtomicBool::new(false));
    let lag_reporter = spawn_lag_reporter(&config, &deps, positions.clone(), stop_lag.clone())?;
    let committer = std::thread::Builder::new()
        .name("billstream-commit".into())
        .spawn(move || committer.run(applied))
        .map_err(|e| {
            stop_lag.store(true, Ordering::Relaxed);
            ProcessorError::Kafka(KafkaError::ClientCreation(e.to_string()))
        })?;
    std::thread::Builder::new()
        .name("billstream-processor".into())
        .spawn(move || {
            let mut lp = Loop { config, deps, applier, positions, shutdown, progress, to_commit: Some(to_commit), spent };
            lp.run(&consumer);
            // The committer finishes what it was handed, then stops.
            lp.to_commit = None;
            let _ = committer.join();
            stop_lag.store(true, Ordering::Relaxed);
            let _ = lag_reporter.join();
            lp.close(&consumer);
            // Leave the group and flush before reporting stopped, so whoever waits can
            // take the broker down next.
            drop(lp);
            drop(consumer);
            let _ = tx.send(Ok(()));
        })
        .map_err(|e| ProcessorError::Kafka(KafkaError::ClientCreation(e.to_string())))?;
    Ok(ProcessorHandle { done, assigned })
}

/// Sets the lag gauge once a second from the broker's high watermarks, on a thread and a
/// client of its own, until `stop`: on the processor thread it cost a broker round trip per
/// partition (up to 200 ms each) in the middle of the loop. The caller joins it.
fn spawn_lag_reporter(
    config: &ProcessorConfig,
    deps: &ProcessorDeps,
    positions: Positions,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ProcessorError> {
    let client: BaseConsumer = client_config(config).set("group.id", &config.group_id).create()?;
    let (topic, metrics) = (config.commands_topic.clone(), deps.metrics.clone());
    std::thread::Builder::new()
        .name("billstream-lag".into())
        .spawn(move || {
            let mut next_report = Instant::now() + Duration::from_secs(1);
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() < next_report {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                next_report = Instant::now() + Duration::from_secs(1);
                let positions: Vec<(i32, i64)> =
                    positions.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(&p, &o)| (p, o)).collect();
                for (p, next) in positions {
                    if let Ok((_, high)) = client.fetch_watermarks(&topic, p, Duration::from_millis(500)) {
                        metrics.lag.with_label_values(&[&p.to_string()]).set((high - next).max(0));
                    }
                }
            }
        })
        .map_err(|e| ProcessorError::Kafka(KafkaError::ClientCreation(e.to_string())))
}

/// Records of a batch handed to the producer: `which` of its records (see
/// [`BatchOutput::records`]), acknowledged through `acks`.
struct InFlight {
    acks: Batch,
    which: Vec<usize>,
}

/// A batch applied and not yet published and committed.
struct Applied {
    output: BatchOutput,
    size: usize,
    started: Instant,
}

struct Loop {
    config: ProcessorConfig,
    deps: ProcessorDeps,
    applier: Applier,
    positions: Positions,
    shutdown: watch::Receiver<bool>,
    progress: Arc<Progress>,
    to_commit: Option<SyncSender<Applied>>,
    /// Committed batches coming back to be freed here, where they were allocated: freeing
    /// them on the committer thread cost it ~9 % of its time in mimalloc's cross-thread path.
    spent: Receiver<BatchOutput>,
}

impl Loop {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn run(&mut self, consumer: &BaseConsumer<ProcessorContext>) {
        while !self.stopping() {
            let first = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(e)) => {
                    warn!(error = %e, "consumer error");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + self.config.linger;
            while batch.len() < self.config.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match consumer.poll(left) {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => warn!(error = %e, "consumer error"),
                    None => break,
                }
                if left.is_zero() {
                    break;
                }
            }
            while let Ok(spent) = self.spent.try_recv() {
                drop(spent);
            }
            let started = Instant::now();
            let progress = self.progress.get();
            if progress.stopped {
                // A commit was abandoned at shutdown; what followed it must not be applied.
                return;
            }
            self.applier.committed(progress.committed);
            // Drop what the store already covers: a replay after a crash or a rebalance.
            let raw: Vec<RawMessage<'_>> = {
                let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
                batch
                    .iter()
                    .filter(|m| {
                        let next = positions.entry(m.partition()).or_insert(0);
                        if m.offset() < *next {
                            return false;
                        }
                        *next = m.offset() + 1;
                        true
                    })
                    .map(|m| RawMessage { partition: m.partition(), offset: m.offset(), key: m.key(), payload: m.payload() })
                    .collect()
            };
            let bytes: usize = batch.iter().map(|m| m.payload().map_or(0, <[u8]>::len)).sum();
            self.deps.metrics.consumed_bytes.inc_by(bytes as u64);
            let replayed = (batch.len() - raw.len()) as u64;
            self.deps.metrics.messages.with_label_values(&["replayed"]).inc_by(replayed);
            if raw.is_empty() {
                continue;
            }
            let Some(output) = self.process(&raw) else { return };
            self.progress.update(|st| st.handed_over = output.seq);
            let applied = Applied { output, size: raw.len(), started };
            if self.to_commit.as_ref().is_none_or(|tx| tx.send(applied).is_err()) {
                return;
            }
            drop(batch);
        }
    }

    /// Applies a batch, retrying while the store or registry is unavailable. `None` when
    /// shutdown came first: nothing was written, the batch will be replayed.
    fn process(&mut self, raw: &[RawMessage<'_>]) -> Option<BatchOutput> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.deps.runtime.block_on(self.applier.apply(raw)) {
                Ok(out) => return Some(out),
                Err(e @ (ApplyError::Store(_) | ApplyError::Registry(_))) => {
                    error!(error = %e, "batch failed; retrying");
                }
            }
            if self.stopping() {
                return None;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn close(&mut self, consumer: &BaseConsumer<ProcessorContext>) {
        // Leave Kafka's committed offsets (a hint for tools) at what the store holds: the
        // positions may be ahead of it when a commit was abandoned at shutdown.
        let ctx = consumer.context();
        let stored = self.deps.runtime.block_on(self.deps.store.partition_offsets(&ctx.cluster_id, &ctx.topic)).unwrap_or_default();
        let mut tpl = TopicPartitionList::new();
        for p in self.positions.lock().unwrap_or_else(|p| p.into_inner()).keys() {
            if let Some(&next) = stored.get(p) {
                let _ = tpl.add_partition_offset(&self.config.commands_topic, *p, Offset::Offset(next));
            }
        }
        if tpl.count() > 0 {
            let _ = consumer.commit(&tpl, CommitMode::Sync);
        }
        consumer.unsubscribe();
        info!("processor stopped");
    }
}

/// Publishes and commits applied batches, in order, on a thread of its own.
struct Committer {
    /// Where committed batches go to be freed (see `Loop::spent`).
    spent: std::sync::mpsc::Sender<BatchOutput>,
    config: ProcessorConfig,
    deps: ProcessorDeps,
    producer: BatchProducer,
    consumer: Arc<BaseConsumer<ProcessorContext>>,
    shutdown: watch::Receiver<bool>,
    progress: Arc<Progress>,
}

impl Committer {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn run(self, applied: Receiver<Applied>) {
        // The next batch, its records already handed to the producer.
        let mut ahead: Option<(Applied, InFlight)> = None;
        loop {
            let (batch, in_flight) = match ahead.take() {
                Some(next) => next,
                None => match applied.recv() {
                    Ok(batch) => {
                        let in_flight = self.enqueue_all(&batch.output);
                        (batch, in_flight)
                    }
                    Err(_) => return,
                },
            };
            let Applied { output, size, started } = batch;
            let seq = output.seq;
            let published = self.published(&output, in_flight);
            // This batch's records are all acknowledged. Hand the next batch's to the producer
            // now, so their acknowledgements arrive while this one is committed: waiting for
            // them after the commit left the committer asleep for about a tenth of the time
            // (off-CPU 4 ms per wait in `perf record -e sched:sched_switch`) while the
            // processor waited for it. Publishing them before this commit is what a crash
            // between a batch's publish and its commit already does: the replay publishes the
            // same event ids again.
            if published && let Ok(next) = applied.try_recv() {
                let in_flight = self.enqueue_all(&next.output);
                ahead = Some((next, in_flight));
            }
            if !published || !self.commit(&output, size, started) {
                // Later batches were applied over this one: none of them may be committed.
                self.progress.update(|st| st.stopped = true);
                return;
            }
            self.progress.update(|st| st.committed = seq);
            // A processor that has stopped no longer takes them: then it is freed here.
            let _ = self.spent.send(output);
        }
    }

    /// Record `i` of `out` (its events, then its DLQ records) and its topic.
    fn record<'a>(&'a self, out: &'a BatchOutput, i: usize) -> (&'a str, &'a super::apply::OutRecord) {
        match out.events.get(i) {
            Some(r) => (&self.config.events_topic, r),
            None => (&self.config.dlq_topic, &out.dlq[i - out.events.len()]),
        }
    }

    /// Hands every record of `out` to the producer.
    fn enqueue_all(&self, out: &BatchOutput) -> InFlight {
        self.enqueue(out, (0..out.records()).collect())
    }

    /// Hands records `which` of `out` to the producer.
    fn enqueue(&self, out: &BatchOutput, which: Vec<usize>) -> InFlight {
        let acks = Batch::new(which.len());
        for (i, &r) in which.iter().enumerate() {
            let (topic, r) = self.record(out, r);
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in r.headers.iter() {
                headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            // Stamped at the send, not with the event's time: a replay's events would
            // otherwise carry old timestamps, which time-based retention deletes at once.
            let mut record = Record { topic, key: &r.key, payload: &r.payload, headers: Some(headers), timestamp_ms: None };
            loop {
                match self.producer.send(&acks, i, record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, back)) => {
                        record = back;
                        warn!(error = %e, "enqueue failed; retrying");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        InFlight { acks, which }
    }

    /// Waits until every record of `out` handed over in `in_flight` is acknowledged, sending
    /// the failed ones again. false when shutdown interrupted it.
    fn published(&self, out: &BatchOutput, mut in_flight: InFlight) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            let results = self.deps.runtime.block_on(in_flight.acks.wait());
            let failed: Vec<usize> = in_flight
                .which
                .iter()
                .zip(results)
                .filter_map(|(&r, result)| {
                    let e = result.err()?;
                    warn!(error = %e, "delivery failed; retrying");
                    Some(r)
                })
                .collect();
            if failed.is_empty() {
                return true;
            }
            if self.stopping() {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
            in_flight = self.enqueue(out, failed);
        }
    }

    /// Commits the store (after the batch's records were acknowledged) and reports the batch
    /// done. Returns false when shutdown interrupted it (nothing committed; the batch will be
    /// replayed).
    fn commit(&self, out: &BatchOutput, size: usize, started: Instant) -> bool {
        let mutations = &out.mutations;
        let commit_started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.deps.runtime.block_on(self.deps.store.apply(mutations)) {
                Ok(()) => break,
                Err(e) => {
                    error!(error = %e, "store commit failed; retrying");
                    if self.stopping() {
                        return false;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let m = &self.deps.metrics;
        m.commit_seconds.observe(commit_started.elapsed().as_secs_f64());
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        m.batch_size.observe(size as f64);
        m.batches.inc();
        m.messages.with_label_values(&["applied"]).inc_by(out.counts.applied);
        m.messages.with_label_values(&["rejected"]).inc_by(out.counts.rejected);
        m.messages.with_label_values(&["duplicate"]).inc_by(out.counts.duplicate);
        m.messages.with_label_values(&["dlq"]).inc_by(out.counts.dlq);
        for class in &out.dlq_classes {
            m.dlq.with_label_values(&[class]).inc();
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for (_, issued) in out.resolved() {
            m.ingest_to_applied.observe((now_ms - issued).max(0) as f64 / 1000.0);
        }
        self.deps.hub.resolved(out.resolved().map(|(id, _)| id));
        debug!(
            size,
            applied = out.counts.applied,
            rejected = out.counts.rejected,
            apply_and_publish_ms = commit_started.duration_since(started).as_millis() as u64,
            commit_ms = commit_started.elapsed().as_millis() as u64,
            "batch committed"
        );

        // Kafka's committed offsets are a hint for tools; the store's are the truth.
        let mut tpl = TopicPartitionList::new();
        for (&p, &next) in &out.next_offsets {
            let _ = tpl.add_partition_offset(&self.config.commands_topic, p, Offset::Offset(next));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            debug!(error = %e, "offset commit hint failed");
        }
        true
    }
}
