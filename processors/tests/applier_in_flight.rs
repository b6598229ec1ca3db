//! The applier runs ahead of the store: batch N+1 is applied while N is still being
//! published and committed. What N changed must be visible to N+1, and the mutations of
//! both, committed in order, must leave the store as if each had been committed at once.
#![allow(missing_docs)]

use billstream_processors::HotStore;
use billstream_processors::consumer::apply::{Applier, BatchOutput, RawMessage};
use billstream_processors::store::{FjallConfig, FjallStore, Tenant, TotalsKey};
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use billstream_schemas::{Date, SchemaCatalog};
use rust_decimal::Decimal;
use std::sync::Arc;

const TENANT: &str = "t_inflight";

fn d(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn command(id: &str, payload: CommandPayload) -> CommandEnvelope {
    CommandEnvelope {
        command_id: id.into(),
        tenant_id: TENANT.into(),
        correlation_id: None,
        issued_at_ms: 1_790_000_000_000,
        idempotency_key: None,
        payload,
    }
}

fn create(invoice_id: &str) -> CommandPayload {
    CommandPayload::CreateInvoice(CreateInvoice {
        invoice_id: invoice_id.into(),
        customer_id: "cust".into(),
        currency: "EUR".parse().expect("EUR"),
        issue_date: Date::from_ymd(2026, 11, 1).expect("date"),
        due_date: Date::from_ymd(2026, 12, 1).expect("date"),
        lines: vec![LineItem { description: "work".into(), quantity: d("1"), unit_price: d("100.00"), tax_rate: d("0") }],
        metadata: Default::default(),
    })
}

fn pay(invoice_id: &str, amount: &str) -> CommandPayload {
    CommandPayload::RecordPayment(RecordPayment {
        invoice_id: invoice_id.into(),
        amount: d(amount),
        currency: "EUR".parse().expect("EUR"),
        method: "card".into(),
        external_reference: None,
        received_on: Date::from_ymd(2026, 11, 20).expect("date"),
    })
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    store: Arc<FjallStore>,
    applier: Applier,
    catalog: Arc<SchemaCatalog>,
    next_offset: i64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(FjallStore::open(&FjallConfig::new(dir.path())).expect("open"));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let tenant = Tenant { tenant_id: TENANT.into(), name: "in flight".into(), buckets: 1, created_at_ms: 0 };
        rt.block_on(store.put_tenant(&tenant, [7; 32])).expect("tenant");
        let catalog = Arc::new(SchemaCatalog::embedded());
        let applier = Applier::new(store.clone(), catalog.clone(), "cluster".into(), "billing.commands".into());
        Fixture { rt, store, applier, catalog, next_offset: 0, _dir: dir }
    }

    /// Applies commands as one batch of consecutive messages on partition 0.
    fn apply(&mut self, commands: &[CommandEnvelope]) -> BatchOutput {
        let payloads: Vec<Vec<u8>> = commands.iter().map(|c| self.catalog.encode_command(c).expect("encode")).collect();
        let messages: Vec<RawMessage<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| RawMessage { partition: 0, offset: self.next_offset + i as i64, key: None, payload: Some(p) })
            .collect();
        self.next_offset += commands.len() as i64;
        self.rt.block_on(self.applier.apply(&messages)).expect("apply")
    }

    fn commit(&mut self, out: &BatchOutput) {
        self.rt.block_on(self.store.apply(&out.mutations)).expect("commit");
        self.applier.committed(out.seq);
    }

    fn outstanding(&self) -> Decimal {
        let key = TotalsKey { tenant_id: TENANT.into(), bucket: 0, currency: "EUR".parse().expect("EUR") };
        self.rt.block_on(self.store.get_totals(&key)).expect("totals").map(|t| t.outstanding).unwrap_or_default()
    }
}

#[test]
fn a_batch_sees_what_the_uncommitted_batches_before_it_changed() {
    let mut f = Fixture::new();
    let first = f.apply(&[
        command("c1", create("INV-1")),
        command("c2", CommandPayload::IssueInvoice { invoice_id: "INV-1".into() }),
    ]);
    assert_eq!(first.counts.applied, 2);

    // Not committed yet: the store knows nothing of INV-1 or of c1.
    let second = f.apply(&[command("c3", pay("INV-1", "30.00")), command("c1", create("INV-1"))]);
    assert_eq!((second.counts.applied, second.counts.duplicate, second.counts.rejected), (1, 1, 0), "payment applied on the in-flight invoice; c1 recognised");

    let third = f.apply(&[command("c4", pay("INV-1", "70.00"))]);
    assert_eq!(third.counts.applied, 1, "pays the rest of the balance the second batch left");

    f.commit(&first);
    assert_eq!(f.outstanding(), d("100.00"));
    f.commit(&second);
    assert_eq!(f.outstanding(), d("70.00"));
    f.commit(&third);
    assert_eq!(f.outstanding(), d("0.00"));
    let invoice = f.rt.block_on(f.store.get_invoice(TENANT, "INV-1")).expect("read").expect("stored");
    assert_eq!((invoice.amount_paid, invoice.payments.len()), (d("100.00"), 2));
    let paid: Decimal = f.rt.block_on(f.store.month_paid(TENANT, 202_611)).expect("read").into_iter().map(|(_, v)| v).sum();
    assert_eq!(paid, d("100.00"), "both payments counted in November");

    // Once committed, the overlay is gone and the store answers: a retry is still a duplicate
    // and a further payment is refused (the invoice is paid).
    let fourth = f.apply(&[command("c4", pay("INV-1", "70.00")), command("c5", pay("INV-1", "1.00"))]);
    assert_eq!((fourth.counts.duplicate, fourth.counts.rejected), (1, 1));
}
