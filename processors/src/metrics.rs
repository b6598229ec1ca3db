//! Every metric the processors export: names, labels and help texts in one place.

use crate::store::FjallStore;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::Arc;

/// The processors' metrics, registered in a caller-provided registry.
#[derive(Clone, Debug)]
pub struct ProcessorMetrics {
    /// `billstream_processor_messages_total{outcome}`: every consumed message, by outcome
    /// (`applied`, `rejected`, `duplicate`, `dlq`, `replayed`).
    pub messages: IntCounterVec,
    /// `billstream_processor_batches_total`.
    pub batches: IntCounter,
    /// `billstream_processor_batch_size`: messages per batch.
    pub batch_size: Histogram,
    /// `billstream_processor_batch_seconds`: decode + apply + produce + commit per batch.
    pub batch_seconds: Histogram,
    /// `billstream_processor_commit_seconds`: the store commit alone.
    pub commit_seconds: Histogram,
    /// `billstream_processor_ingest_to_applied_seconds`: command issued_at to commit.
    pub ingest_to_applied: Histogram,
    /// `billstream_processor_dlq_total{class}`.
    pub dlq: IntCounterVec,
    /// `billstream_processor_consumer_lag{partition}`: high watermark − next offset.
    pub lag: IntGaugeVec,
    /// `billstream_processor_consumed_bytes_total`: value bytes of every consumed message,
    /// replays included (the gateway compares it with what it produced).
    pub consumed_bytes: IntCounter,
}

fn buckets(start: f64, factor: f64, n: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, factor, n).unwrap_or_default()
}

impl ProcessorMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = ProcessorMetrics {
            messages: IntCounterVec::new(
                Opts::new("billstream_processor_messages_total", "Consumed command messages by outcome"),
                &["outcome"],
            )?,
            batches: IntCounter::new("billstream_processor_batches_total", "Committed batches")?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("billstream_processor_batch_size", "Messages per batch").buckets(buckets(1.0, 4.0, 9)),
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new("billstream_processor_batch_seconds", "Time to process one batch")
                    .buckets(buckets(0.0005, 2.0, 14)),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new("billstream_processor_commit_seconds", "Time to commit one batch to the hot store")
                    .buckets(buckets(0.0001, 2.0, 16)),
            )?,
            ingest_to_applied: Histogram::with_opts(
                HistogramOpts::new(
                    "billstream_processor_ingest_to_applied_seconds",
                    "From the command's issued_at to its batch commit",
                )
                .buckets(buckets(0.001, 2.0, 14)),
            )?,
            dlq: IntCounterVec::new(
                Opts::new("billstream_processor_dlq_total", "Messages sent to the dead-letter topic by error class"),
                &["class"],
            )?,
            lag: IntGaugeVec::new(
                Opts::new("billstream_processor_consumer_lag", "Messages not yet processed, per partition"),
                &["partition"],
            )?,
            consumed_bytes: IntCounter::new(
                "billstream_processor_consumed_bytes_total",
                "Value bytes of consumed command messages",
            )?,
        };
        registry.register(Box::new(m.messages.clone()))?;
        registry.register(Box::new(m.batches.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.commit_seconds.clone()))?;
        registry.register(Box::new(m.ingest_to_applied.clone()))?;
        registry.register(Box::new(m.dlq.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.consumed_bytes.clone()))?;
        Ok(m)
    }

    /// Messages consumed so far, whatever their outcome.
    pub fn consumed(&self) -> u64 {
        ["applied", "rejected", "duplicate", "dlq"].iter().map(|o| self.messages.with_label_values(&[o]).get()).sum()
    }
}

/// The embedded hot store's state, read from the engine whenever `/metrics` is scraped:
///
/// - `billstream_store_l0_tables{table}`: disk tables in level 0, flushed and not merged yet
///   (a point read of an absent key checks each one's filter; a count that keeps growing says
///   compaction is behind);
/// - `billstream_store_tables{table}`, `billstream_store_blob_files{table}`,
///   `billstream_store_disk_bytes{table}`;
/// - `billstream_store_flushed_bytes_total{table}` and
///   `billstream_store_compacted_bytes_total{table}`: bytes of tables and blob files written
///   by flushes and by compactions since the store was opened (compacted over flushed is
///   what each byte costs again as the table grows: its write amplification less one);
/// - `billstream_store_journal_files`, `billstream_store_memtable_bytes`,
///   `billstream_store_flushes_queued`, `billstream_store_compactions_running`.
#[derive(Debug)]
pub struct StoreMetrics {
    store: Arc<FjallStore>,
    l0_tables: IntGaugeVec,
    tables: IntGaugeVec,
    blob_files: IntGaugeVec,
    disk_bytes: IntGaugeVec,
    flushed_bytes: IntCounterVec,
    compacted_bytes: IntCounterVec,
    journal_files: IntGauge,
    memtable_bytes: IntGauge,
    flushes_queued: IntGauge,
    compactions_running: IntGauge,
    /// Held through a scrape: two at once would both add the same catch-up to a counter.
    scraping: std::sync::Mutex<()>,
}

impl StoreMetrics {
    /// Registers the store's metrics in `registry`.
    pub fn register(registry: &Registry, store: Arc<FjallStore>) -> Result<(), prometheus::Error> {
        let per_table = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["table"]);
        let written = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["table"]);
        let m = StoreMetrics {
            store,
            l0_tables: per_table("billstream_store_l0_tables", "Disk tables in level 0 (flushed, not yet merged into level 1)")?,
            tables: per_table("billstream_store_tables", "Disk tables in all levels")?,
            blob_files: per_table("billstream_store_blob_files", "Blob files (values stored apart from their keys)")?,
            disk_bytes: per_table("billstream_store_disk_bytes", "Bytes on disk, blob files included")?,
            flushed_bytes: written(
                "billstream_store_flushed_bytes_total",
                "Bytes of tables and blob files written by flushes since the store was opened",
            )?,
            compacted_bytes: written(
                "billstream_store_compacted_bytes_total",
                "Bytes of tables and blob files written by compactions since the store was opened",
            )?,
            journal_files: IntGauge::new("billstream_store_journal_files", "Journal files not yet released by a flush")?,
            memtable_bytes: IntGauge::new("billstream_store_memtable_bytes", "Bytes in memtables, not yet flushed to disk tables")?,
            flushes_queued: IntGauge::new("billstream_store_flushes_queued", "Sealed memtables waiting for a flush")?,
            compactions_running: IntGauge::new("billstream_store_compactions_running", "Compactions running")?,
            scraping: std::sync::Mutex::new(()),
        };
        registry.register(Box::new(m))
    }

    fn collectors(&self) -> [&dyn Collector; 10] {
        [
            &self.l0_tables,
            &self.tables,
            &self.blob_files,
            &self.disk_bytes,
            &self.flushed_bytes,
            &self.compacted_bytes,
            &self.journal_files,
            &self.memtable_bytes,
            &self.flushes_queued,
            &self.compactions_running,
        ]
    }
}

impl Collector for StoreMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.collectors().into_iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        let s = self.store.engine_stats();
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for t in &s.tables {
            self.l0_tables.with_label_values(&[t.name]).set(int(t.l0_tables as u64));
            self.tables.with_label_values(&[t.name]).set(int(t.tables as u64));
            self.blob_files.with_label_values(&[t.name]).set(int(t.blob_files as u64));
            self.disk_bytes.with_label_values(&[t.name]).set(int(t.disk_bytes));
            // The engine's counts only grow (from the store's opening), so each counter
            // catches up with its count.
            for (counter, count) in [(&self.flushed_bytes, t.flushed_bytes), (&self.compacted_bytes, t.compacted_bytes)] {
                let c = counter.with_label_values(&[t.name]);
                c.inc_by(count.saturating_sub(c.get()));
            }
        }
        self.journal_files.set(int(s.journal_files as u64));
        self.memtable_bytes.set(int(s.memtable_bytes));
        self.flushes_queued.set(int(s.flushes_queued as u64));
        self.compactions_running.set(int(s.compactions_running as u64));
        self.collectors().into_iter().flat_map(Collector::collect).collect()
    }
}
