//! Black-box tests of the whole pipeline: real HTTP on a free port, the real Kafka protocol
//! (embedded broker), the real store.

mod common;

use billstream::pipeline::Pipeline;
use billstream_processors::domain::ids;
use billstream_schemas::{Event, SchemaCatalog};
use common::{Api, config, consume, consume_to_end, invoice, tenant};
use rdkafka::Timestamp;
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use std::time::Duration;

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a decimal string: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_move_through_their_life_over_http_and_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.http.max_body_bytes = 64 * 1024;
    let p = Pipeline::start(&cfg).await.expect("pipeline starts");
    assert!(p.wait_ready(Duration::from_secs(60)).await, "partitions assigned");
    let (a_id, a_key) = tenant(&p, "A", 1).await;
    let (_b_id, b_key) = tenant(&p, "B", 4).await;
    let a = Api::new(&p, &a_key);
    let b = Api::new(&p, &b_key);

    // Create and wait: 3 × 0.335 @ 19 % → 1.01 + 0.19; 2 × 10.00 @ 0 % → 20.00.
    let body = invoice("A-1", "EUR", &[("3", "0.335", "19"), ("2", "10.00", "0")]);
    let req = a
        .client
        .post(format!("{}/v1/invoices?wait=applied", a.base))
        .header("x-api-key", &a.key)
        .header("x-correlation-id", "corr-A-1")
        .json(&body);
    let resp = req.send().await.expect("sent");
    assert_eq!(resp.headers().get("x-correlation-id").map(|v| v.to_str().ok()), Some(Some("corr-A-1")));
    let created: Value = resp.json().await.expect("json");
    assert_eq!(created["status"], "applied", "{created}");
    let create_cmd = created["command_id"].as_str().expect("command id").to_string();
    let (s, inv) = a.get("/v1/invoices/A-1").await;
    assert_eq!(s, 200);
    assert_eq!((inv["status"].as_str(), dec(&inv["total"]), dec(&inv["tax"])), (Some("draft"), "21.20".parse().expect("d"), "0.19".parse().expect("d")));
    assert_eq!(dec(&inv["lines"][0]["net"]), "1.01".parse().expect("d"));

    // A derived invoice id, and a retried create with the same Idempotency-Key is one command.
    let anon = json!({"customer_id": "c", "currency": "JPY", "issue_date": "2026-11-01", "due_date": "2026-11-01",
                      "lines": [{"description": "x", "quantity": "1", "unit_price": "1000", "tax_rate": "10"}]});
    let (s1, r1) = a.post("/v1/invoices", anon.clone(), Some("create-once")).await;
    let (s2, r2) = a.post("/v1/invoices?wait=applied", anon, Some("create-once")).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(r1["command_id"], r2["command_id"]);
    assert_eq!(r1["invoice_id"], r2["invoice_id"]);
    assert!(r1["invoice_id"].as_str().is_some_and(|i| i.starts_with("inv_")), "{r1}");

    // Issue, pay partially (retried), pay the rest.
    let (_, r) = a.post("/v1/invoices/A-1/issue?wait=applied", json!({}), None).await;
    assert_eq!(r["status"], "applied", "{r}");
    let pay = |amount: &str| json!({"amount": amount, "currency": "EUR", "method": "card", "received_on": "2026-11-02"});
    let (_, p1) = a.post("/v1/invoices/A-1/payments?wait=applied", pay("20.00"), Some("pay-1")).await;
    let (_, p1again) = a.post("/v1/invoices/A-1/payments?wait=applied", pay("20.00"), Some("pay-1")).await;
    assert_eq!((p1["status"].as_str(), &p1["command_id"]), (Some("applied"), &p1again["command_id"]));
    let (_, inv) = a.get("/v1/invoices/A-1").await;
    assert_eq!((inv["payments"].as_array().map(Vec::len), dec(&inv["balance_due"])), (Some(1), "1.20".parse().expect("d")));
    let (_, over) = a.post("/v1/invoices/A-1/payments?wait=applied", pay("1.21"), Some("pay-over")).await;
    assert_eq!((over["status"].as_str(), over["reason"]["code"].as_str()), (Some("rejected"), Some("overpayment")), "{over}");
    let (_, p2) = a.post("/v1/invoices/A-1/payments?wait=applied", pay("1.20"), Some("pay-2")).await;
    assert_eq!(p2["status"], "applied");
    let (_, inv) = a.get("/v1/invoices/A-1").await;
    assert_eq!((inv["status"].as_str(), dec(&inv["balance_due"])), (Some("paid"), rust_decimal::Decimal::ZERO));
    let (_, v) = a.post("/v1/invoices/A-1/void?wait=applied", json!({"reason": "oops"}), None).await;
    assert_eq!(v["reason"]["code"], "has_payments");

    // A draft can be voided.
    a.post("/v1/invoices?wait=applied", invoice("A-2", "USD", &[("1", "99.99", "20")]), None).await;
    let (_, v) = a.post("/v1/invoices/A-2/void?wait=applied", json!({"reason": "duplicate"}), None).await;
    assert_eq!(v["status"], "applied");

    // Validation names the field; nothing invalid reaches Kafka.
    let (s, e) = a.post("/v1/invoices/A-1/payments", pay("1.00"), None).await;
    assert_eq!((s, e["code"].as_str(), e["field"].as_str()), (422, Some("idempotency_key_required"), Some("idempotency_key")));
    let mut float = invoice("A-3", "EUR", &[("1", "1", "0")]);
    float["lines"][0]["unit_price"] = json!(9.99);
    let (s, e) = a.post("/v1/invoices", float, None).await;
    assert_eq!((s, e["field"].as_str()), (400, Some("lines[0].unit_price")), "{e}");
    let (s, e) = a.post("/v1/invoices", invoice("A-3", "EURO", &[("1", "1", "0")]), None).await;
    assert_eq!((s, e["field"].as_str()), (422, Some("currency")));
    let (s, e) = a.get("/v1/invoices/bad%20id").await;
    assert_eq!((s, e["field"].as_str()), (422, Some("id")));
    let big = json!({"customer_id": "x".repeat(100 * 1024)});
    let (s, e) = a.post("/v1/invoices", big, None).await;
    assert_eq!((s, e["code"].as_str()), (413, Some("payload_too_large")));

    // Authentication and tenant isolation.
    let anon = reqwest::Client::new();
    let s = anon.get(format!("{}/v1/invoices/A-1", a.base)).send().await.expect("sent").status().as_u16();
    assert_eq!(s, 401);
    let s = anon.get(format!("{}/v1/invoices/A-1", a.base)).header("x-api-key", "bsk_nope").send().await.expect("sent").status().as_u16();
    assert_eq!(s, 401);
    assert_eq!(b.get("/v1/invoices/A-1").await.0, 404);
    let (_, steal) = b.post("/v1/invoices/A-1/payments?wait=applied", pay("1.00"), Some("steal")).await;
    assert_eq!(steal["reason"]["code"], "invoice_not_found", "{steal}");
    let (_, seen) = b.get(&format!("/v1/commands/{create_cmd}")).await;
    assert_eq!(seen["status"], "pending", "another tenant's command is invisible");
    let (_, list_b) = b.get("/v1/invoices").await;
    assert_eq!(list_b["invoices"].as_array().map(Vec::len), Some(0));
    let (_, inv) = a.get("/v1/invoices/A-1").await;
    assert_eq!(inv["payments"].as_array().map(Vec::len), Some(2), "B's payment did not touch A's invoice");

    // Summary and listing.
    let (_, sum) = a.get("/v1/summary?as_of=2026-11-15").await;
    let eur = sum["currencies"].as_array().and_then(|c| c.iter().find(|r| r["currency"] == "EUR")).cloned().expect("EUR row");
    assert_eq!((dec(&eur["paid_this_month"]), dec(&eur["outstanding"])), ("21.20".parse().expect("d"), rust_decimal::Decimal::ZERO));
    assert_eq!(eur["counts"], json!({"draft": 0, "open": 0, "paid": 1, "void": 0}));
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = token.as_ref().map(|t| format!("&page_token={t}")).unwrap_or_default();
        let (_, page) = a.get(&format!("/v1/invoices?limit=1{q}")).await;
        ids.extend(page["invoices"].as_array().expect("array").iter().map(|i| i["invoice_id"].as_str().unwrap_or("").to_string()));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    let (_, voids) = a.get("/v1/invoices?status=void").await;
    assert_eq!(voids["invoices"][0]["invoice_id"], "A-2");

    // Batch: each item on its own, in order.
    let (s, r) = a
        .post(
            "/v1/commands:batch?wait=applied",
            json!({"commands": [
                {"type": "create_invoice", "invoice_id": "A-B1", "customer_id": "c", "currency": "GBP", "issue_date": "2026-11-01",
                 "due_date": "2026-11-30", "lines": [{"description": "x", "quantity": "1", "unit_price": "10", "tax_rate": "20"}]},
                {"type": "issue_invoice", "invoice_id": "A-B1"},
                {"type": "record_payment", "invoice_id": "A-B1", "amount": "12.00", "currency": "GBP", "method": "card"},
                {"type": "record_payment", "invoice_id": "A-B1", "amount": "12.00", "currency": "GBP", "method": "card", "idempotency_key": "b1"},
                {"type": "teleport", "invoice_id": "A-B1"},
                {"type": "void_invoice", "invoice_id": "A-B1"}
            ]}),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let st: Vec<&str> = r["results"].as_array().expect("results").iter().map(|x| x["status"].as_str().unwrap_or("?")).collect();
    assert_eq!(st, ["applied", "applied", "rejected", "applied", "rejected", "rejected"], "{r}");
    assert_eq!(r["results"][2]["error"]["field"], "commands[2].idempotency_key");
    assert_eq!(r["results"][4]["error"]["code"], "invalid_json");
    assert_eq!(r["results"][5]["reason"]["code"], "has_payments");

    // Events: deterministic ids, correlation id carried, every outcome present.
    let events = consume(&p.bootstrap, "billing.events", 12, Duration::from_secs(20));
    let catalog = SchemaCatalog::embedded();
    let decoded: Vec<_> = events
        .iter()
        .map(|m| (catalog.decode_event(m.payload().expect("payload")).expect("decodes"), m))
        .filter(|(e, _)| e.tenant_id == a_id)
        .collect();
    let created_event = decoded.iter().find(|(e, _)| e.command_id == create_cmd).expect("created event");
    assert_eq!(created_event.0.event_id, ids::event_id(&create_cmd, 0));
    assert!(matches!(&created_event.0.event, Event::InvoiceCreated { invoice_id, .. } if invoice_id == "A-1"));
    let corr = created_event.1.headers().and_then(|h| h.iter().find(|h| h.key == "x-correlation-id").and_then(|h| h.value.map(<[u8]>::to_vec)));
    assert_eq!(corr.as_deref(), Some(&b"corr-A-1"[..]));
    let kinds: std::collections::BTreeSet<&str> = decoded.iter().map(|(e, _)| e.event.type_name()).collect();
    for k in ["invoice_created", "invoice_issued", "payment_applied", "invoice_paid", "invoice_voided", "command_rejected"] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }

    // The command as published: the request's correlation id as a header, and its issued-at
    // as the record's timestamp.
    let commands = consume_to_end(&p.bootstrap, "billing.commands", Duration::from_secs(20));
    let (create_record, command) = commands
        .iter()
        .find_map(|m| {
            let c = catalog.decode_command(m.payload().expect("payload")).ok()?;
            (c.command_id == create_cmd).then_some((m, c))
        })
        .expect("the create command's record");
    assert_eq!(create_record.timestamp(), Timestamp::CreateTime(command.issued_at_ms));
    let corr = create_record.headers().and_then(|h| h.iter().find(|h| h.key == "x-correlation-id").and_then(|h| h.value.map(<[u8]>::to_vec)));
    assert_eq!(corr.as_deref(), Some(&b"corr-A-1"[..]));
    assert_eq!(command.correlation_id.as_deref(), Some("corr-A-1"));

    // Operations endpoints.
    let metrics = reqwest::get(format!("{}/metrics", a.base)).await.expect("sent").text().await.expect("text");
    for name in [
        "billstream_processor_messages_total",
        "billstream_ingest_requests_total",
        "billstream_processor_batch_seconds",
        "billstream_store_l0_tables{table=\"invoices\"}",
        "billstream_store_memtable_bytes",
        "billstream_store_compacted_bytes_total{table=\"commands_keyed\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Consumer lag is reported once a second, per partition, by a thread of its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", a.base)).await.expect("sent").text().await.expect("text");
        if metrics.lines().any(|l| l.starts_with("billstream_processor_consumer_lag{partition=")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no billstream_processor_consumer_lag sample within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let doc: Value = reqwest::get(format!("{}/openapi.json", a.base)).await.expect("sent").json().await.expect("json");
    for path in ["/v1/invoices", "/v1/invoices/{id}", "/v1/invoices/{id}/payments", "/v1/commands:batch", "/v1/summary", "/v1/commands/{id}"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert_eq!(reqwest::get(format!("{}/healthz", a.base)).await.expect("sent").status().as_u16(), 200);
    p.shutdown().await.expect("clean shutdown");
}
