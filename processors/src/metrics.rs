//! Every metric the processors export: names, labels and help texts in one place.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

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
