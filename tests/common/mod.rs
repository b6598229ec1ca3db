//! Shared helpers of the black-box tests: start a pipeline on free ports, speak HTTP and
//! Kafka to it.
#![allow(dead_code)]

use billstream::config::Config;
use billstream::pipeline::Pipeline;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A configuration for tests: a temporary data dir, a free port, the embedded broker.
pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    c.http.listen = "127.0.0.1:0".into();
    c.kafka.partitions = 4;
    c.http.wait_timeout = Duration::from_secs(20);
    c
}

/// Creates a tenant directly in the pipeline's store.
pub async fn tenant(p: &Pipeline, name: &str, buckets: u32) -> (String, String) {
    let (t, key) = billstream_ingest::auth::create_tenant(p.store.as_ref(), name, buckets, 0).await.expect("tenant created");
    (t.tenant_id, key)
}

/// A tiny HTTP client bound to one pipeline and one API key.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(p: &Pipeline, key: &str) -> Self {
        Self::at(&format!("http://{}", p.http_addr), key)
    }

    /// A client for a gateway at `base` (e.g. one in another process).
    pub fn at(base: &str, key: &str) -> Self {
        Api { client: reqwest::Client::new(), base: base.to_string(), key: key.to_string() }
    }

    pub async fn post(&self, path: &str, body: Value, idempotency_key: Option<&str>) -> (u16, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).header("x-api-key", &self.key).json(&body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).header("x-api-key", &self.key).send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A create-invoice body.
pub fn invoice(id: &str, currency: &str, lines: &[(&str, &str, &str)]) -> Value {
    serde_json::json!({
        "invoice_id": id,
        "customer_id": "cust-1",
        "currency": currency,
        "issue_date": "2026-11-01",
        "due_date": "2026-12-01",
        "lines": lines.iter().map(|(q, p, t)| serde_json::json!({"description": "item", "quantity": q, "unit_price": p, "tax_rate": t})).collect::<Vec<_>>(),
        "metadata": {"po": "PO-1"}
    })
}

/// A consumer assigned every partition of `topic` from the beginning (no group membership),
/// and the partitions' current high watermarks.
fn from_start(bootstrap: &str, topic: &str) -> (BaseConsumer, Vec<(i32, i64)>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut highs = Vec::new();
    for p in md.topics()[0].partitions() {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
        highs.push((p.id(), high));
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    (consumer, highs)
}

/// Reads every message of `topic` from the beginning until `want` arrived or `timeout`.
pub fn consume(bootstrap: &str, topic: &str, want: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let (consumer, _) = from_start(bootstrap, topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

/// Reads every message of `topic` up to its current end (the high watermarks when called).
pub fn consume_to_end(bootstrap: &str, topic: &str, timeout: Duration) -> Vec<OwnedMessage> {
    let (consumer, highs) = from_start(bootstrap, topic);
    let mut remaining: std::collections::HashMap<i32, i64> = highs.into_iter().filter(|&(_, high)| high > 0).collect();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !remaining.is_empty() {
        assert!(Instant::now() < deadline, "{topic} not read to its end within {timeout:?}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            if remaining.get(&m.partition()).is_some_and(|&high| m.offset() + 1 >= high) {
                remaining.remove(&m.partition());
            }
            out.push(m.detach());
        }
    }
    out
}
