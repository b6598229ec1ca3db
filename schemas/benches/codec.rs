//! Avro encode and decode of the envelopes: the direct codec and apache-avro's generic path.
#![allow(missing_docs)]

use apache_avro::Schema;
use apache_avro::writer::datum::GenericDatumWriter;
use billstream_schemas::catalog::PUBLISHED;
use billstream_schemas::codec::command_to_value;
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem};
use billstream_schemas::{Date, SchemaCatalog};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn create() -> CommandEnvelope {
    CommandEnvelope {
        command_id: "5f0c1a52-8f3e-4c1e-9a52-0d6b8e1f2a3b".into(),
        tenant_id: "t_0123456789abcdef0123456789abcdef".into(),
        correlation_id: Some("corr-1".into()),
        issued_at_ms: 1_790_000_000_000,
        idempotency_key: None,
        payload: CommandPayload::CreateInvoice(CreateInvoice {
            invoice_id: "INV-2026-000001".into(),
            customer_id: "cust-42".into(),
            currency: "EUR".parse().expect("EUR"),
            issue_date: Date::from_days(20_400),
            due_date: Date::from_days(20_430),
            lines: (0..5)
                .map(|i| LineItem {
                    description: format!("line {i}"),
                    quantity: "3".parse().expect("d"),
                    unit_price: "19.99".parse().expect("d"),
                    tax_rate: "19".parse().expect("d"),
                })
                .collect(),
            metadata: Default::default(),
        }),
    }
}

fn codec(c: &mut Criterion) {
    let catalog = SchemaCatalog::embedded();
    let cmd = create();
    let bytes = catalog.encode_command(&cmd).expect("encodes");
    c.bench_function("command/encode (direct)", |b| b.iter(|| catalog.encode_command(black_box(&cmd))));
    c.bench_function("command/decode (direct)", |b| b.iter(|| catalog.decode_command(black_box(&bytes))));
    let schema = Schema::parse_str(PUBLISHED[0].source).expect("schema");
    let writer = GenericDatumWriter::builder(&schema).build().expect("writer");
    c.bench_function("command/encode (apache-avro values)", |b| {
        b.iter(|| writer.write_value_to_vec(command_to_value(black_box(&cmd)).expect("value")))
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
