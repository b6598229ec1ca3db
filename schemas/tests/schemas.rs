//! The published schemas: compatible with each other, listed in the catalog, and round-trip.

use billstream_schemas::catalog::PUBLISHED;
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use billstream_schemas::compat::{check_backward_transitive, read_dir};
use billstream_schemas::event::{Event, EventEnvelope};
use billstream_schemas::{Date, SchemaCatalog, SchemaError};
use rust_decimal::Decimal;
use std::path::Path;

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

fn avro_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("avro")
}

#[test]
fn every_published_version_is_backward_compatible_with_all_older_ones() {
    let files = read_dir(&avro_dir()).expect("schemas/avro readable");
    assert!(files.len() >= 2);
    check_backward_transitive(&files).expect("published schemas are compatible");
}

#[test]
fn catalog_lists_exactly_the_files_in_schemas_avro() {
    let files = read_dir(&avro_dir()).expect("schemas/avro readable");
    let mut listed: Vec<_> = PUBLISHED.iter().map(|p| (p.file.to_string(), p.source.to_string())).collect();
    let mut on_disk: Vec<_> = files.into_iter().map(|f| (f.file, f.source)).collect();
    listed.sort();
    on_disk.sort();
    assert_eq!(listed, on_disk, "catalog::PUBLISHED and schemas/avro/ disagree");
}

#[test]
fn an_incompatible_new_version_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/incompatible");
    let files = read_dir(&dir).expect("fixture readable");
    let err = check_backward_transitive(&files).expect_err("v2 adds a field without a default");
    let SchemaError::Schema { file, message } = err else { panic!("wrong error: {err:?}") };
    assert_eq!(file, "billing.commands-value.v2.avsc");
    assert!(message.contains("billing.commands-value.v1.avsc"), "{message}");
}

fn create() -> CommandEnvelope {
    CommandEnvelope {
        command_id: "c-1".into(),
        tenant_id: "t-1".into(),
        correlation_id: Some("corr".into()),
        issued_at_ms: 1_790_000_000_123,
        idempotency_key: None,
        payload: CommandPayload::CreateInvoice(CreateInvoice {
            invoice_id: "inv-1".into(),
            customer_id: "cust-9".into(),
            currency: "EUR".parse().expect("EUR"),
            issue_date: "2026-11-01".parse().expect("date"),
            due_date: "2026-12-01".parse().expect("date"),
            lines: vec![
                LineItem { description: "widget".into(), quantity: d("3"), unit_price: d("0.335"), tax_rate: d("19") },
                LineItem { description: "refund line".into(), quantity: d("-1.5"), unit_price: d("1234.567891"), tax_rate: d("7.7") },
            ],
            metadata: [("po".to_string(), "PO-17".to_string())].into(),
        }),
    }
}

#[test]
fn commands_round_trip_through_the_embedded_catalog() {
    let catalog = SchemaCatalog::embedded();
    let pay = CommandEnvelope {
        idempotency_key: Some("k".into()),
        correlation_id: None,
        payload: CommandPayload::RecordPayment(RecordPayment {
            invoice_id: "inv-1".into(),
            amount: d("12.34"),
            currency: "JPY".parse().expect("JPY"),
            method: "card".into(),
            external_reference: Some("ch_1".into()),
            received_on: Date::from_days(20_000),
        }),
        ..create()
    };
    let void = CommandEnvelope {
        payload: CommandPayload::VoidInvoice { invoice_id: "inv-1".into(), reason: None },
        ..create()
    };
    let issue = CommandEnvelope { payload: CommandPayload::IssueInvoice { invoice_id: "x".into() }, ..create() };
    for c in [create(), pay, void, issue] {
        let bytes = catalog.encode_command(&c).expect("encodes");
        assert_eq!(bytes[0], 0, "Confluent magic byte");
        assert_eq!(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]), catalog.command_schema_id());
        assert_eq!(catalog.decode_command(&bytes).expect("decodes"), c);
    }
}

#[test]
fn events_round_trip_and_are_not_mistaken_for_commands() {
    let catalog = SchemaCatalog::embedded();
    let e = EventEnvelope {
        event_id: "e".into(),
        command_id: "c".into(),
        tenant_id: "t".into(),
        correlation_id: None,
        occurred_at_ms: 5,
        event: Event::PaymentApplied {
            invoice_id: "i".into(),
            payment_id: "p".into(),
            amount: d("1.5"),
            currency: "USD".parse().expect("USD"),
            amount_paid: d("1.5"),
            balance_due: d("98.5"),
        },
    };
    let bytes = catalog.encode_event(&e).expect("encodes");
    assert_eq!(catalog.decode_event(&bytes).expect("decodes"), e);
    assert!(matches!(catalog.decode_command(&bytes), Err(SchemaError::Framing(_))));
}

#[test]
fn garbage_is_a_specific_error_never_a_panic() {
    let catalog = SchemaCatalog::embedded();
    let good = catalog.encode_command(&create()).expect("encodes");
    assert_eq!(catalog.decode_command(b"{\"json\":1}").map_err(|e| e.class()), Err("framing"));
    assert_eq!(catalog.decode_command(&[0, 0, 0, 0, 99, 1, 2]).map_err(|e| e.class()), Err("unknown_schema"));
    for cut in 5..good.len() {
        assert!(catalog.decode_command(&good[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(catalog.decode_command(&trailing).map_err(|e| e.class()), Err("avro_decode"));
    // A currency that is not ISO 4217 names the field.
    let mut bad = create();
    if let CommandPayload::CreateInvoice(ci) = &mut bad.payload {
        ci.lines[0].quantity = d("0.0000001");
    }
    let err = catalog.encode_command(&bad).expect_err("too many places");
    assert!(err.to_string().contains("quantity"), "{err}");
}
