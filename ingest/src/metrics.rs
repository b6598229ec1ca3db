//! Every metric the gateway exports.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The gateway's metrics.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    /// `billstream_ingest_requests_total{route,status}`.
    pub requests: IntCounterVec,
    /// `billstream_ingest_request_seconds{route}`.
    pub latency: HistogramVec,
    /// `billstream_ingest_commands_total{outcome}`: `accepted` (on Kafka) or `invalid`.
    pub commands: IntCounterVec,
}

impl GatewayMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = GatewayMetrics {
            requests: IntCounterVec::new(
                Opts::new("billstream_ingest_requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new("billstream_ingest_request_seconds", "HTTP request latency by route")
                    .buckets(prometheus::exponential_buckets(0.0005, 2.0, 15)?),
                &["route"],
            )?,
            commands: IntCounterVec::new(
                Opts::new("billstream_ingest_commands_total", "Commands by gateway outcome"),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        registry.register(Box::new(m.commands.clone()))?;
        Ok(m)
    }
}
