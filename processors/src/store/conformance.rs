//! The behaviour every [`HotStore`] backend must show. A backend is done when
//! [`run`] passes against it (see `processors/tests/store_conformance.rs`).
//!
//! Each check uses its own tenant id, so the suite can run against a shared, non-empty store.

use super::{AuditEntry, AuditEvent, CommandState, CommandStatus, HotStore, MonthKey, Mutation, OpenItem, Tenant, Totals, TotalsKey};
use crate::StoreError;
use crate::domain::{Invoice, InvoiceLine, InvoiceStatus};
use billstream_schemas::Date;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// A draft invoice for `tenant` with the given id and issue year.
pub fn sample_invoice(tenant: &str, invoice_id: &str, year: i32) -> Invoice {
    let issue = Date::from_ymd(year, 3, 15).unwrap_or(Date::from_days(0));
    Invoice {
        tenant_id: tenant.into(),
        invoice_id: invoice_id.into(),
        customer_id: "cust".into(),
        currency: "EUR".parse().unwrap_or_else(|_| unreachable!("EUR is ISO 4217")),
        issue_date: issue,
        due_date: Date::from_days(issue.days() + 30),
        status: InvoiceStatus::Draft,
        lines: Vec::new().into(),
        subtotal: d("100"),
        tax: d("20"),
        total: d("120"),
        amount_paid: Decimal::ZERO,
        payments: Vec::new(),
        metadata: BTreeMap::new(),
        void_reason: None,
        updated_at_ms: 0,
        created_by: "c".into(),
    }
}

/// A draft invoice with 40 lines: a row of several kilobytes.
pub fn large_invoice(tenant: &str, invoice_id: &str, year: i32) -> Invoice {
    let line = |i: usize| InvoiceLine {
        description: format!("line {i}: consulting, week {i}"),
        quantity: d("1.5"),
        unit_price: d("80.00"),
        tax_rate: d("19"),
        net: d("120.00"),
        tax: d("22.80"),
    };
    Invoice { lines: (0..40).map(line).collect::<Vec<_>>().into(), ..sample_invoice(tenant, invoice_id, year) }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A new tenant id of the form billstream makes (`tenant create`, `t_` and 32 hex digits),
/// which a store may key differently from other ids; the checks use both forms.
fn tenant_id() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// Runs every check, panicking with a description on the first failure.
pub async fn run(store: &dyn HotStore) {
    invoices_round_trip_and_move_between_statuses(store).await;
    listing_pages_through_everything_once(store).await;
    batches_are_atomic_with_offsets(store).await;
    tenants_and_keys(store).await;
    totals_months_open_items_and_audit(store).await;
    audit_log_in_issue_order_across_seconds_and_batches(store).await;
}

async fn invoices_round_trip_and_move_between_statuses(store: &dyn HotStore) {
    let t = tenant_id();
    assert_eq!(store.get_invoice(&t, "nope").await.expect("read"), None, "absent invoice reads as None");
    let inv = sample_invoice(&t, "i-1", 2024);
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(inv.clone()), bucket: 3, previous_status: None }]).await.expect("write");
    assert_eq!(store.get_invoice(&t, "i-1").await.expect("read"), Some(inv.clone()));
    assert_eq!(store.get_invoice("other-tenant", "i-1").await.expect("read"), None, "tenants are isolated");

    let mut open = inv.clone();
    open.status = InvoiceStatus::Open;
    store
        .apply(&[Mutation::PutInvoice { invoice: Arc::new(open.clone()), bucket: 3, previous_status: Some(InvoiceStatus::Draft) }])
        .await
        .expect("write");
    let drafts = store.list_invoices(&t, Some(InvoiceStatus::Draft), None, 10).await.expect("list");
    let opens = store.list_invoices(&t, Some(InvoiceStatus::Open), None, 10).await.expect("list");
    assert!(drafts.invoices.is_empty(), "status index entry moved away from draft");
    assert_eq!(opens.invoices, vec![open]);
    // A large row (a backend may keep big values apart from their keys) reads back whole,
    // also after it is replaced by a small one and back.
    let t = unique("conf-large");
    let large = large_invoice(&t, "i-large", 2024);
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(large.clone()), bucket: 0, previous_status: None }]).await.expect("write");
    assert_eq!(store.get_invoice(&t, "i-large").await.expect("read"), Some(large.clone()));
    let small = Invoice { lines: Vec::new().into(), ..large.clone() };
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(small.clone()), bucket: 0, previous_status: Some(InvoiceStatus::Draft) }]).await.expect("write");
    assert_eq!(store.get_invoice(&t, "i-large").await.expect("read"), Some(small));
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(large.clone()), bucket: 0, previous_status: Some(InvoiceStatus::Draft) }]).await.expect("write");
    assert_eq!(store.get_invoice(&t, "i-large").await.expect("read"), Some(large));
}

async fn listing_pages_through_everything_once(store: &dyn HotStore) {
    let t = tenant_id();
    let mut batch = Vec::new();
    for i in 0..25 {
        let inv = sample_invoice(&t, &format!("i-{i:02}"), 2020 + (i % 3));
        batch.push(Mutation::PutInvoice { invoice: Arc::new(inv), bucket: (i % 2) as u32, previous_status: None });
    }
    store.apply(&batch).await.expect("write");
    for status in [None, Some(InvoiceStatus::Draft)] {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = store.list_invoices(&t, status, token.as_deref(), 7).await.expect("list");
            assert!(page.invoices.len() <= 7);
            seen.extend(page.invoices.into_iter().map(|i| i.invoice_id));
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "every invoice exactly once ({status:?})");
    }
    let err = store.list_invoices(&t, None, Some("zz"), 5).await.expect_err("garbage token");
    assert!(matches!(err, StoreError::BadPageToken), "{err:?}");
    let other = store.list_invoices("another", None, None, 5).await.expect("list");
    assert!(other.invoices.is_empty());
}

async fn batches_are_atomic_with_offsets(store: &dyn HotStore) {
    let t = tenant_id();
    let cluster = unique("cluster");
    assert!(store.partition_offsets(&cluster, "billing.commands").await.expect("read").is_empty());
    let status = CommandStatus {
        command_type: "create_invoice".into(),
        invoice_id: "i".into(),
        state: CommandState::Rejected { code: "x".into(), message: "y".into() },
        issued_at_ms: 1,
        partition: 2,
        offset: 41,
    };
    store
        .apply(&[
            Mutation::PutCommand { tenant_id: t.clone(), command_id: "c1".into(), status: status.clone() },
            Mutation::SetOffset { cluster_id: cluster.clone(), topic: "billing.commands".into(), partition: 2, next_offset: 42 },
            Mutation::SetOffset { cluster_id: cluster.clone(), topic: "billing.commands".into(), partition: 0, next_offset: 7 },
        ])
        .await
        .expect("write");
    assert_eq!(store.get_command(&t, "c1").await.expect("read"), Some(status.clone()));
    assert_eq!(store.get_command(&t, "c2").await.expect("read"), None);
    // Ids of every shape the gateway and producers use: time-ordered (v7), derived from an
    // idempotency key (v5), chosen freely. An outcome is per tenant.
    let ids = [crate::domain::ids::random_command_id(), crate::domain::ids::command_id_for_key(&t, "k"), "order-17".to_string()];
    let other = unique("conf-batch-other");
    let puts: Vec<Mutation> = ids
        .iter()
        .map(|id| Mutation::PutCommand { tenant_id: t.clone(), command_id: id.clone(), status: status.clone() })
        .collect();
    store.apply(&puts).await.expect("write");
    for id in &ids {
        assert_eq!(store.get_command(&t, id).await.expect("read"), Some(status.clone()), "{id}");
        assert_eq!(store.get_command(&other, id).await.expect("read"), None, "{id}");
    }
    let offsets = store.partition_offsets(&cluster, "billing.commands").await.expect("read");
    assert_eq!(offsets, BTreeMap::from([(0, 7), (2, 42)]));
    assert!(store.partition_offsets("another-cluster", "billing.commands").await.expect("read").is_empty());
    assert!(store.partition_offsets(&cluster, "billing.other").await.expect("read").is_empty());
}

async fn tenants_and_keys(store: &dyn HotStore) {
    let tenant = Tenant { tenant_id: unique("conf-tenant"), name: "ACME".into(), buckets: 4, created_at_ms: 5 };
    let mut hash = [0u8; 32];
    hash[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    store.put_tenant(&tenant, hash).await.expect("create");
    assert_eq!(store.get_tenant(&tenant.tenant_id).await.expect("read"), Some(tenant.clone()));
    assert_eq!(store.tenant_for_key(hash).await.expect("read"), Some(tenant.clone()));
    let mut other = hash;
    other[31] ^= 1;
    assert_eq!(store.tenant_for_key(other).await.expect("read"), None);
    let second = Tenant { tenant_id: unique("conf-tenant"), ..tenant };
    let err = store.put_tenant(&second, hash).await.expect_err("key hash reused");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn totals_months_open_items_and_audit(store: &dyn HotStore) {
    let t = tenant_id();
    let eur = "EUR".parse().unwrap_or_else(|_| unreachable!("EUR is ISO 4217"));
    let usd = "USD".parse().unwrap_or_else(|_| unreachable!("USD is ISO 4217"));
    let k0 = TotalsKey { tenant_id: t.clone(), bucket: 0, currency: eur };
    let k1 = TotalsKey { tenant_id: t.clone(), bucket: 1, currency: usd };
    let tot = Totals { outstanding: d("10.50"), counts: [1, 2, 3, 4] };
    let m = MonthKey { tenant_id: t.clone(), year_month: 202_611, bucket: 1, currency: usd };
    let due = |days| Date::from_days(days);
    let item = |id: &str, days| OpenItem { tenant_id: t.clone(), due_date: due(days), invoice_id: id.into(), currency: eur, balance_due: d("1") };
    let day = Date::from_days(20_000);
    let audit = |ms: i64, command: &str| AuditEntry {
        tenant_id: t.clone(),
        day,
        issued_at_ms: i64::from(day.days()) * 86_400_000 + ms,
        command_id: command.into(),
        invoice_id: "i".into(),
        events: vec![
            AuditEvent { kind: "invoice_created".into(), detail: "total 1.00 EUR".into() },
            AuditEvent { kind: "invoice_issued".into(), detail: String::new() },
        ],
    };
    store
        .apply(&[
            Mutation::PutTotals(k0.clone(), tot.clone()),
            Mutation::PutTotals(k1.clone(), Totals::default()),
            Mutation::PutMonthPaid(m.clone(), d("99.99")),
            Mutation::PutOpenItem(item("a", 100)),
            Mutation::PutOpenItem(item("b", 200)),
            Mutation::PutOpenItem(item("c", 300)),
            Mutation::Audit(audit(5, "a-later")),
            Mutation::Audit(audit(1, "z-earlier")),
            Mutation::Audit(AuditEntry { day: Date::from_days(20_001), issued_at_ms: audit(0, "x").issued_at_ms + 86_400_000, ..audit(0, "next-day") }),
        ])
        .await
        .expect("write");
    assert_eq!(store.get_totals(&k0).await.expect("read"), Some(tot.clone()));
    assert_eq!(store.tenant_totals(&t).await.expect("read"), vec![(k0, tot), (k1, Totals::default())]);
    assert_eq!(store.get_month_paid(&m).await.expect("read"), Some(d("99.99")));
    assert_eq!(store.month_paid(&t, 202_611).await.expect("read"), vec![(m, d("99.99"))]);
    assert!(store.month_paid(&t, 202_612).await.expect("read").is_empty());
    let before: Vec<_> = store.open_items_due_before(&t, due(300)).await.expect("read").into_iter().map(|i| i.invoice_id).collect();
    assert_eq!(before, ["a", "b"], "strictly before, oldest first");
    store
        .apply(&[Mutation::RemoveOpenItem { tenant_id: t.clone(), due_date: due(100), invoice_id: "a".into() }])
        .await
        .expect("write");
    assert_eq!(store.open_items_due_before(&t, due(1000)).await.expect("read").len(), 2);
    // Within one batch the last write of a row wins: a partial payment removes and re-puts
    // the open item of an invoice whose due date did not move; a full one only removes it.
    let smaller = OpenItem { balance_due: d("0.25"), ..item("b", 200) };
    store
        .apply(&[
            Mutation::RemoveOpenItem { tenant_id: t.clone(), due_date: due(200), invoice_id: "b".into() },
            Mutation::PutOpenItem(smaller.clone()),
            Mutation::PutOpenItem(item("c", 300)),
            Mutation::RemoveOpenItem { tenant_id: t.clone(), due_date: due(300), invoice_id: "c".into() },
        ])
        .await
        .expect("write");
    assert_eq!(store.open_items_due_before(&t, due(1000)).await.expect("read"), vec![smaller]);
    let log = store.audit(&t, day).await.expect("read");
    assert_eq!(log.iter().map(|e| e.command_id.as_str()).collect::<Vec<_>>(), ["z-earlier", "a-later"], "issue order, one day");
    assert_eq!(log[0], audit(1, "z-earlier"), "read back whole");
}

/// A command id in the audit check below.
const AUDIT_UUID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// A tenant's day reads back in issue order whatever the batches: rows in many seconds, a
/// second written again by a later batch, a late row for a second already passed, another
/// tenant in the same seconds, rows of the days around it.
async fn audit_log_in_issue_order_across_seconds_and_batches(store: &dyn HotStore) {
    let (t, other) = (tenant_id(), unique("conf-audit-other"));
    let day = Date::from_days(20_100);
    let start = i64::from(day.days()) * 86_400_000;
    let entry = |tenant: &str, ms: i64, command: &str| AuditEntry {
        tenant_id: tenant.to_string(),
        day: Date::from_unix_millis(start + ms),
        issued_at_ms: start + ms,
        command_id: command.into(),
        invoice_id: format!("inv-{command}"),
        events: vec![AuditEvent { kind: "payment_recorded".into(), detail: format!("at {ms}") }],
    };
    let batches: [&[(i64, &str)]; 3] = [
        &[(1_500, "c"), (0, "a"), (999, "b"), (1_500, "b2"), (61_000, "e"), (86_399_999, "last")],
        // The same seconds again, then a row for a second before them (a lagging partition).
        // A command id as the gateway makes them (a UUID) among the others.
        &[(1_000, "c0"), (61_000, "d"), (62_000, "f"), (500, "a2"), (1_700, AUDIT_UUID)],
        // The day before and the day after.
        &[(-1, "yesterday"), (86_400_000, "tomorrow"), (2_000, "g")],
    ];
    for batch in batches {
        let mut mutations: Vec<_> = batch.iter().map(|&(ms, c)| Mutation::Audit(entry(&t, ms, c))).collect();
        mutations.push(Mutation::Audit(entry(&other, 1_200, &format!("other-{}", batch.len()))));
        store.apply(&mutations).await.expect("write");
    }
    let log = store.audit(&t, day).await.expect("read");
    let commands: Vec<_> = log.iter().map(|e| e.command_id.as_str()).collect();
    assert_eq!(
        commands,
        ["a", "a2", "b", "c0", "b2", "c", AUDIT_UUID, "g", "d", "e", "f", "last"],
        "one tenant's day, by issued_at then command id"
    );
    assert_eq!(log[3], entry(&t, 1_000, "c0"), "read back whole");
    assert_eq!(log[6], entry(&t, 1_700, AUDIT_UUID), "read back whole");
    assert_eq!(store.audit(&other, day).await.expect("read").len(), 3, "the other tenant's rows are its own");
    let next: Vec<_> = store.audit(&t, Date::from_days(day.days() + 1)).await.expect("read").into_iter().map(|e| e.command_id).collect();
    assert_eq!(next, ["tomorrow"]);
    assert!(store.audit(&unique("conf-audit-none"), day).await.expect("read").is_empty());
}
