//! Publishes commands to `billing.commands`; a command counts as accepted only once the
//! broker acknowledged it (acks=all, idempotent producer).

use billstream_processors::publish::{Batch, BatchProducer, Record};
use billstream_schemas::topics::HEADER_CORRELATION_ID;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

/// One encoded command ready to publish.
#[derive(Debug, Clone, Default)]
pub struct OutgoingCommand {
    /// Partition key: tenant or tenant/bucket.
    pub key: String,
    /// Confluent-framed Avro.
    pub payload: Vec<u8>,
    /// The record's timestamp: the envelope's issued-at (Unix milliseconds).
    pub timestamp_ms: i64,
}

/// The command producer.
#[derive(Clone)]
pub struct CommandProducer {
    producer: Arc<BatchProducer>,
    topic: String,
}

impl std::fmt::Debug for CommandProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandProducer").field("topic", &self.topic).finish()
    }
}

impl CommandProducer {
    /// A producer for `brokers`, publishing to `topic`. `overrides` are extra librdkafka
    /// settings (security, tuning).
    pub fn new(brokers: &str, topic: &str, overrides: &[(String, String)]) -> Result<Self, KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Java's default partitioner: producers in any language agree on the partition.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "30000");
        for (k, v) in overrides {
            c.set(k, v);
        }
        Ok(CommandProducer { producer: Arc::new(BatchProducer::new(&c)?), topic: topic.to_string() })
    }

    /// Publishes all commands, each with the `correlation_id` header (the request's: one
    /// for all), and waits for each acknowledgement; one result per command, in order.
    pub async fn send_all(&self, commands: &[OutgoingCommand], correlation_id: &str) -> Vec<Result<(), KafkaError>> {
        let batch = Batch::new(commands.len());
        for (i, c) in commands.iter().enumerate() {
            // librdkafka takes each record's header list: one per record.
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header { key: HEADER_CORRELATION_ID, value: Some(correlation_id.as_bytes()) });
            let mut record = Record {
                topic: &self.topic,
                key: c.key.as_bytes(),
                payload: &c.payload,
                headers: Some(headers),
                // Given, so librdkafka does not read the clock for each record.
                timestamp_ms: Some(c.timestamp_ms),
            };
            let mut waited = Duration::ZERO;
            loop {
                match self.producer.send(&batch, i, record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) if waited < Duration::from_secs(10) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        waited += Duration::from_millis(2);
                    }
                    Err((e, _)) => break batch.fail(i, e),
                }
            }
        }
        batch.wait().await
    }
}
