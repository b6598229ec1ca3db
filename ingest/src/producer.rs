//! Publishes commands to `billing.commands`; a command counts as accepted only once the
//! broker acknowledged it (acks=all, idempotent producer).

use billstream_schemas::topics::HEADER_CORRELATION_ID;
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// One encoded command ready to publish.
#[derive(Debug, Clone, Default)]
pub struct OutgoingCommand {
    /// Partition key: tenant or tenant/bucket.
    pub key: String,
    /// Confluent-framed Avro.
    pub payload: Vec<u8>,
    /// Correlation id header.
    pub correlation_id: Option<String>,
}

/// The command producer.
#[derive(Clone)]
pub struct CommandProducer {
    producer: FutureProducer,
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
        Ok(CommandProducer { producer: c.create()?, topic: topic.to_string() })
    }

    /// Publishes all commands and waits for each acknowledgement; one result per command,
    /// in order.
    pub async fn send_all(&self, commands: &[OutgoingCommand]) -> Vec<Result<(), KafkaError>> {
        let mut futures = Vec::with_capacity(commands.len());
        for c in commands {
            let mut headers = OwnedHeaders::new();
            if let Some(corr) = &c.correlation_id {
                headers = headers.insert(Header { key: HEADER_CORRELATION_ID, value: Some(corr.as_bytes()) });
            }
            let mut record = FutureRecord::to(&self.topic).key(&c.key).payload(&c.payload).headers(headers);
            let mut waited = Duration::ZERO;
            let f = loop {
                match self.producer.send_result(record) {
                    Ok(f) => break Ok(f),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) if waited < Duration::from_secs(10) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        waited += Duration::from_millis(2);
                    }
                    Err((e, _)) => break Err(e),
                }
            };
            futures.push(f);
        }
        let pending: Vec<_> = futures.iter_mut().filter_map(|f| f.as_mut().ok()).collect();
        let mut acks = join_all(pending).await.into_iter();
        futures
            .into_iter()
            .map(|f| match f {
                Err(e) => Err(e),
                Ok(_) => match acks.next() {
                    Some(Ok(Ok(_))) => Ok(()),
                    Some(Ok(Err((e, _)))) => Err(e),
                    _ => Err(KafkaError::Canceled),
                },
            })
            .collect()
    }
}
