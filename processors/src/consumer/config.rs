//! Settings of the processor consumer.

use std::time::Duration;

/// How the processor consumes and batches.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Topic to consume.
    pub commands_topic: String,
    /// Topic for outcomes.
    pub events_topic: String,
    /// Topic for undecodable messages.
    pub dlq_topic: String,
    /// Most messages in one batch.
    pub max_batch: usize,
    /// How long to keep filling a batch after its first message. Under load batches fill up
    /// on their own (messages queue while the previous batch is applied); at a moderate rate
    /// the linger is latency added to every command.
    pub linger: Duration,
    /// How long the group waits for a silent member (a crashed processor) before giving
    /// its partitions to the others.
    pub session_timeout: Duration,
    /// Extra librdkafka settings for both consumer and producer (e.g. security).
    pub kafka_overrides: Vec<(String, String)>,
}

impl ProcessorConfig {
    /// Defaults for the given brokers and the standard topic names.
    pub fn new(brokers: impl Into<String>) -> Self {
        ProcessorConfig {
            brokers: brokers.into(),
            group_id: "billing-processors".into(),
            commands_topic: billstream_schemas::topics::COMMANDS.into(),
            events_topic: billstream_schemas::topics::EVENTS.into(),
            dlq_topic: billstream_schemas::topics::DLQ.into(),
            max_batch: 5000,
            linger: Duration::from_millis(1),
            session_timeout: Duration::from_secs(10),
            kafka_overrides: Vec::new(),
        }
    }
}
