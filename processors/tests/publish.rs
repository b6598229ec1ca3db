//! `BatchProducer` against librdkafka's mock cluster, over the Kafka protocol: every record
//! of a batch is acknowledged once, failures land at their own index, and what was
//! acknowledged can be read back, with the timestamp it was given.

use billstream_processors::publish::{Batch, BatchProducer, Record};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Sends every record of `records` as one batch (giving up, as the callers do, on a record
/// the producer refuses to enqueue) and waits for the batch.
fn publish(producer: &BatchProducer, records: Vec<Record<'_>>) -> Vec<Result<(), KafkaError>> {
    let batch = Batch::new(records.len());
    for (i, r) in records.into_iter().enumerate() {
        if let Err((e, _)) = producer.send(&batch, i, r) {
            batch.fail(i, e);
        }
    }
    runtime().block_on(batch.wait())
}

fn producer(bootstrap: &str) -> BatchProducer {
    BatchProducer::new(
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "1")
            .set("message.max.bytes", "10000")
            .set("message.timeout.ms", "10000"),
    )
    .expect("producer")
}

fn key_of(i: usize) -> &'static [u8] {
    if i.is_multiple_of(2) { b"even" } else { b"odd" }
}

/// A timestamp of its own for record `i`: a day in 2026, plus `i` ms.
fn stamp_of(i: usize) -> i64 {
    1_780_000_000_000 + i as i64
}

#[test]
fn every_record_is_acknowledged_and_readable() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("out", 4, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let producer = producer(&bootstrap);
    let payloads: Vec<Vec<u8>> = (0..600).map(|i| format!("record {i}").into_bytes()).collect();
    let sent_from = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let records = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| Record {
            topic: "out",
            key: key_of(i),
            payload: p,
            headers: Some(OwnedHeaders::new().insert(Header { key: "n", value: Some(i.to_string().as_bytes()) })),
            // Every other record with a timestamp of its own; the rest stamped at the send.
            timestamp_ms: i.is_multiple_of(2).then(|| stamp_of(i)),
        })
        .collect();
    let results = publish(&producer, records);
    assert_eq!(results.len(), 600);
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "publish-test")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset("out", p, Offset::Beginning).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = vec![false; 600];
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.iter().any(|s| !s) && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.expect("message");
        let n: usize = std::str::from_utf8(m.headers().expect("headers").get(0).value.expect("value"))
            .expect("utf-8")
            .parse()
            .expect("index");
        assert_eq!(m.payload(), Some(payloads[n].as_slice()));
        assert_eq!(m.key(), Some(key_of(n)));
        match m.timestamp() {
            Timestamp::CreateTime(t) if n.is_multiple_of(2) => assert_eq!(t, stamp_of(n), "record {n}"),
            Timestamp::CreateTime(t) => assert!(t >= sent_from, "record {n} stamped {t}, before the send at {sent_from}"),
            other => panic!("record {n}: {other:?}"),
        }
        seen[n] = true;
    }
    assert!(seen.iter().all(|s| *s), "{} of 600 records read back", seen.iter().filter(|s| **s).count());
}

#[test]
fn failures_land_at_their_own_index() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("out", 2, 1).expect("topic");
    cluster.create_topic("denied", 2, 1).expect("topic");
    // Every request about this topic is refused: its records fail in delivery.
    cluster.topic_error("denied", RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED).expect("topic error");
    let producer = producer(&cluster.bootstrap_servers());
    let (small, large) = (vec![1u8; 100], vec![2u8; 20_000]);
    let records = (0..30)
        .map(|i| Record {
            topic: if i % 3 == 1 { "denied" } else { "out" },
            key: b"k",
            // Larger than message.max.bytes: refused before it is enqueued.
            payload: if i % 3 == 2 { &large } else { &small },
            headers: None,
            timestamp_ms: None,
        })
        .collect();
    let results = publish(&producer, records);
    for (i, r) in results.iter().enumerate() {
        match i % 3 {
            0 => assert!(r.is_ok(), "record {i}: {r:?}"),
            1 => assert!(r.is_err(), "record {i} went to the denied topic, yet: {r:?}"),
            _ => assert!(
                matches!(r, Err(KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge))),
                "record {i}: {r:?}"
            ),
        }
    }
}
