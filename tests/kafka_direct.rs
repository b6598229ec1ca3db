//! Producers that skip the gateway: Avro commands published with rdkafka and Confluent
//! framing, encoded here with apache-avro straight from the published schema file (not with
//! billstream's codec), plus poison messages that must land in the dead-letter topic.

mod common;

use apache_avro::Schema;
use apache_avro::types::{Record, Value as Avro};
use billstream::pipeline::Pipeline;
use billstream_schemas::SchemaCatalog;
use billstream_schemas::event::Event;
use common::{Api, config, consume, tenant};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

const SCHEMA: &str = include_str!("../schemas/avro/billing.commands-value.v1.avsc");

fn decimal(unscaled: i64) -> Avro {
    // Two's complement, big endian, shortest form that keeps the sign bit right.
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7 && bytes[start] == 0 && bytes[start + 1] & 0x80 == 0 {
        start += 1;
    }
    Avro::Decimal(apache_avro::Decimal::from(&bytes[start..]))
}

/// A Confluent-framed command, encoded independently of billstream's codec.
fn command(schema: &Schema, tenant: &str, command_id: &str, branch: u32, payload: Avro) -> Vec<u8> {
    let mut r = Record::new(schema).expect("record schema");
    r.put("command_id", command_id);
    r.put("tenant_id", tenant);
    r.put("correlation_id", Avro::Union(1, Box::new(Avro::String("java-producer".into()))));
    r.put("issued_at", Avro::TimestampMillis(1_790_000_000_000));
    r.put("idempotency_key", Avro::Union(0, Box::new(Avro::Null)));
    r.put("payload", Avro::Union(branch, Box::new(payload)));
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema).build().expect("writer");
    let body = writer.write_value_to_vec(r).expect("valid datum");
    let mut framed = vec![0, 0, 0, 0, 1];
    framed.extend(body);
    framed
}

fn fields(v: Vec<(&str, Avro)>) -> Avro {
    Avro::Record(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_from_kafka_is_processed_and_poison_goes_to_the_dlq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Pipeline::start(&config(dir.path())).await.expect("pipeline starts");
    assert!(p.wait_ready(Duration::from_secs(60)).await, "partitions assigned");
    let (t, key) = tenant(&p, "direct", 1).await;
    let schema = Schema::parse_str(SCHEMA).expect("schema");
    let create = fields(vec![
        ("invoice_id", Avro::String("K-1".into())),
        ("customer_id", Avro::String("cust".into())),
        ("currency", Avro::String("USD".into())),
        ("issue_date", Avro::Date(20_400)),
        ("due_date", Avro::Date(20_430)),
        (
            "lines",
            Avro::Array(vec![fields(vec![
                ("description", Avro::String("seat".into())),
                ("quantity", decimal(2_000_000)),  // 2.000000
                ("unit_price", decimal(12_500_000)), // 12.500000
                ("tax_rate", decimal(100_000)),    // 10.0000 %
            ])]),
        ),
        ("metadata", Avro::Map(Default::default())),
    ]);
    let issue = fields(vec![("invoice_id", Avro::String("K-1".into()))]);
    let pay = fields(vec![
        ("invoice_id", Avro::String("K-1".into())),
        ("amount", decimal(275_000)), // 27.5000
        ("currency", Avro::String("USD".into())),
        ("method", Avro::String("wire".into())),
        ("external_reference", Avro::Union(0, Box::new(Avro::Null))),
        ("received_on", Avro::Date(20_401)),
    ]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &p.bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let messages: Vec<(String, Vec<u8>)> = vec![
        (t.clone(), command(&schema, &t, "k-create", 0, create)),
        (t.clone(), b"\x00\x00\x00\x00\x01this is not avro".to_vec()),
        (t.clone(), command(&schema, &t, "k-issue", 1, issue)),
        (t.clone(), command(&schema, &t, "k-pay", 2, pay.clone())),
        ("t_ghost".into(), command(&schema, "t_ghost", "k-ghost", 2, pay)),
    ];
    for (k, bytes) in &messages {
        producer.send(FutureRecord::to("billing.commands").key(k).payload(bytes), Duration::from_secs(10)).await.expect("acked");
    }

    let api = Api::new(&p, &key);
    let mut status = serde_json::Value::Null;
    for _ in 0..200 {
        status = api.get("/v1/commands/k-pay").await.1;
        if status["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let create_status = api.get("/v1/commands/k-create").await.1;
    assert_eq!(status["status"], "applied", "{status} {create_status}");
    let (_, inv) = api.get("/v1/invoices/K-1").await;
    assert_eq!((inv["status"].as_str(), inv["total"].as_str(), inv["amount_paid"].as_str()), (Some("paid"), Some("27.50"), Some("27.50")), "{inv}");

    // The poison message: original bytes, untouched, with the reason in headers.
    let dlq = consume(&p.bootstrap, "billing.dlq", 1, Duration::from_secs(20));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].payload(), Some(&messages[1].1[..]));
    let header = |name: &str| {
        dlq[0].headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned())))
    };
    assert_eq!(header("x-billstream-error-class").as_deref(), Some("avro_decode"));
    assert!(header("x-billstream-error-reason").is_some_and(|r| !r.is_empty()));
    assert_eq!(header("x-billstream-source-topic").as_deref(), Some("billing.commands"));
    assert!(header("x-billstream-source-offset").is_some());

    // A command for a tenant that does not exist is rejected, with an event saying so.
    let catalog = SchemaCatalog::embedded();
    let events = consume(&p.bootstrap, "billing.events", 5, Duration::from_secs(20));
    let ghost = events
        .iter()
        .filter_map(|m| catalog.decode_event(m.payload()?).ok())
        .find(|e| e.command_id == "k-ghost")
        .expect("an event for the ghost tenant's command");
    assert!(matches!(ghost.event, Event::CommandRejected { ref code, .. } if code == "unknown_tenant"), "{ghost:?}");
    p.shutdown().await.expect("clean shutdown");
}
