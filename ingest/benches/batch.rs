//! Reading the items of a `POST /v1/commands:batch` body: in one pass when every item
//! parses, item by item (so that each error names its item) when one does not.
#![allow(missing_docs)]

use billstream_ingest::request::batch_items;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// 300 items shaped like the load harness's: creates with five lines, issues, payments.
fn body(bad_last: bool) -> Vec<u8> {
    let mut items = Vec::new();
    for n in 0..100 {
        let lines = (0..5)
            .map(|i| format!(r#"{{"description":"usage {i}","quantity":"{}","unit_price":"19.99","tax_rate":"19"}}"#, i + 1))
            .collect::<Vec<_>>()
            .join(",");
        items.push(format!(
            r#"{{"type":"create_invoice","invoice_id":"r-{n}","customer_id":"cust-{n}","currency":"EUR","issue_date":"2026-11-01","due_date":"2026-11-30","lines":[{lines}]}}"#
        ));
        items.push(format!(r#"{{"type":"issue_invoice","invoice_id":"r-{n}"}}"#));
        items.push(format!(
            r#"{{"type":"record_payment","invoice_id":"r-{n}","amount":"356.82","currency":"EUR","method":"bank_transfer","received_on":"2026-11-02","idempotency_key":"r-{n}-p0"}}"#
        ));
    }
    if bad_last {
        items.pop();
        items.push(r#"{"type":"issue_invoice","invoice_id":7}"#.into());
    }
    format!(r#"{{"commands":[{}]}}"#, items.join(",")).into_bytes()
}

fn batch(c: &mut Criterion) {
    let (valid, one_bad) = (body(false), body(true));
    assert!(batch_items(&valid).expect("body").iter().all(Result::is_ok));
    assert_eq!(batch_items(&one_bad).expect("body").iter().filter(|r| r.is_err()).count(), 1);
    let mut g = c.benchmark_group("batch_items");
    g.throughput(criterion::Throughput::Elements(300));
    g.bench_function("valid", |b| b.iter(|| batch_items(black_box(&valid))));
    g.bench_function("last_item_invalid", |b| b.iter(|| batch_items(black_box(&one_bad))));
    g.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
