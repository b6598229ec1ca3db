//! The processor's hot paths: the aggregate's decision and the store's batch commit.
#![allow(missing_docs)]

use billstream_processors::HotStore;
use billstream_processors::domain::decide;
use billstream_processors::store::{FjallConfig, FjallStore, Mutation, conformance};
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem};
use billstream_schemas::Date;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn create() -> CommandEnvelope {
    CommandEnvelope {
        command_id: "c-1".into(),
        tenant_id: "t".into(),
        correlation_id: None,
        issued_at_ms: 1_790_000_000_000,
        idempotency_key: None,
        payload: CommandPayload::CreateInvoice(CreateInvoice {
            invoice_id: "INV-1".into(),
            customer_id: "cust".into(),
            currency: "EUR".parse().expect("EUR"),
            issue_date: Date::from_days(20_400),
            due_date: Date::from_days(20_430),
            lines: (0..5)
                .map(|_| LineItem {
                    description: "x".into(),
                    quantity: "3".parse().expect("d"),
                    unit_price: "0.335".parse().expect("d"),
                    tax_rate: "19".parse().expect("d"),
                })
                .collect(),
            metadata: Default::default(),
        }),
    }
}

fn apply(c: &mut Criterion) {
    let cmd = create();
    c.bench_function("decide/create_invoice (5 lines)", |b| b.iter(|| decide(None, black_box(&cmd))));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = FjallConfig::new(dir.path());
    config.sync_commits = false;
    let store = FjallStore::open(&config).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut n = 0u64;
    c.bench_function("store/commit 1000 invoices (no fsync)", |b| {
        b.iter_batched(
            || {
                n += 1;
                (0..1000)
                    .map(|i| Mutation::PutInvoice {
                        invoice: conformance::sample_invoice("bench-tenant", &format!("inv-{n}-{i}"), 2026),
                        bucket: 0,
                        previous_status: None,
                    })
                    .collect::<Vec<_>>()
            },
            |batch| rt.block_on(store.apply(&batch)),
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, apply);
criterion_main!(benches);
