//! The processor's hot paths: the aggregate's decision, the applier over a batch of encoded
//! commands (decode, duplicate check, decision, events, audit; what the processor thread does
//! per batch, Kafka aside) and the store's batch commit.
#![allow(missing_docs)]

use billstream_processors::HotStore;
use billstream_processors::consumer::apply::{Applier, RawMessage};
use billstream_processors::domain::{ids, plan};
use billstream_processors::store::{FjallConfig, FjallStore, Mutation, Tenant, conformance};
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use billstream_schemas::{Date, SchemaCatalog};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

// As in the `billstream` binary: allocation is a large share of these paths.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let command_id = ids::random_command_id();
    c.bench_function("ids/event_id", |b| b.iter(|| ids::event_id(black_box(&command_id), 1)));
    let cmd = create();
    // The decision alone: `plan` takes the command's text into the invoice, so each
    // iteration gets a fresh copy, made and dropped outside the timing, as is the outcome.
    // (Until 2026-11-28 this was `decide/create_invoice`, whose copies and drops were timed.)
    c.bench_function("plan/create_invoice (5 lines)", |b| {
        b.iter_batched_ref(|| cmd.clone(), |cmd| plan(None, black_box(cmd)), BatchSize::SmallInput)
    });

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
                        invoice: Arc::new(conformance::sample_invoice("bench-tenant", &format!("inv-{n}-{i}"), 2026)),
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

/// 1,000 commands over 250 invoices of 25 tenants: create (5 lines), issue, a payment keyed
/// by an Idempotency-Key, a second payment without one; fresh ids every batch. Tenant ids of
/// the form `tenant create` makes, and a correlation id on every command as the gateway sets
/// (one per request; here one per invoice's four commands).
fn batch(catalog: &SchemaCatalog, n: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(1000);
    for i in 0..250 {
        let tenant_id = bench_tenant(i % 25);
        let correlation_id = Some(format!("req-{n}-{i}"));
        let invoice_id = format!("INV-{n}-{i}");
        let mut first = create();
        let CommandPayload::CreateInvoice(ci) = &mut first.payload else { unreachable!() };
        ci.invoice_id = invoice_id.clone();
        let pay = |amount: &str, key: Option<String>| {
            let payment = RecordPayment {
                invoice_id: invoice_id.clone(),
                amount: amount.parse().expect("amount"),
                currency: "EUR".parse().expect("EUR"),
                method: "bank_transfer".into(),
                external_reference: None,
                received_on: Date::from_days(20_410),
            };
            (CommandPayload::RecordPayment(payment), key)
        };
        let key = format!("{invoice_id}-p1");
        let payloads = [
            (first.payload, None),
            (CommandPayload::IssueInvoice { invoice_id: invoice_id.clone() }, None),
            pay("1.00", Some(key)),
            pay("0.50", None),
        ];
        for (payload, idempotency_key) in payloads {
            let command_id = match &idempotency_key {
                Some(k) => ids::command_id_for_key(&tenant_id, k),
                None => ids::random_command_id(),
            };
            let cmd = CommandEnvelope {
                command_id,
                tenant_id: tenant_id.clone(),
                correlation_id: correlation_id.clone(),
                idempotency_key,
                payload,
                ..create()
            };
            out.push(catalog.encode_command(&cmd).expect("encode"));
        }
    }
    out
}

/// Tenant `i`'s id, in the form `tenant create` makes (`t_` and the 32 hex digits of a random
/// UUID): digits spread as a random id's are (`i + 1` times an odd 128-bit constant), not `i`
/// after 30 zeros, so that keys led by the tenant differ from their first bytes, as they do in
/// a real store.
fn bench_tenant(i: usize) -> String {
    format!("t_{:032x}", (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn applier(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = FjallConfig::new(dir.path());
    config.sync_commits = false;
    let store = Arc::new(FjallStore::open(&config).expect("open"));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for t in 0..25 {
        let tenant = Tenant { tenant_id: bench_tenant(t), name: format!("t{t}"), buckets: 1, created_at_ms: 0 };
        rt.block_on(store.put_tenant(&tenant, [t as u8; 32])).expect("tenant");
    }
    let catalog = Arc::new(SchemaCatalog::embedded());
    let mut applier = Applier::new(store.clone(), catalog.clone(), "bench-cluster".into(), "billing.commands".into());
    let mut n = 0u64;
    let mut offset = 0i64;
    // Only the applier is timed; each batch is then committed, as the committer would, so
    // the store grows and later batches read what earlier ones wrote.
    c.bench_function("applier/1000 commands (create, issue, 2 payments)", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let payloads = batch(&catalog, n);
                let raw: Vec<RawMessage<'_>> = payloads
                    .iter()
                    .map(|p| {
                        offset += 1;
                        RawMessage { partition: 0, offset, key: None, payload: Some(p) }
                    })
                    .collect();
                let started = Instant::now();
                let out = rt.block_on(applier.apply(black_box(&raw))).expect("apply");
                timed += started.elapsed();
                assert_eq!(out.counts.applied, 1000, "every command applies");
                rt.block_on(store.apply(&out.mutations)).expect("commit");
                applier.committed(out.seq);
            }
            timed
        })
    });
}

criterion_group!(benches, apply, applier);
criterion_main!(benches);
