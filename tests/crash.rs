//! Crash and replay: the processor is killed with SIGKILL in the middle of a stream, started
//! again on the same store and broker, and every payment ends up applied exactly once.

mod common;

use billstream::broker::EmbeddedBroker;
use billstream_schemas::command::{CommandEnvelope, CommandPayload, CreateInvoice, LineItem, RecordPayment};
use billstream_schemas::{Event, SchemaCatalog};
use common::{Api, consume_to_end};
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rust_decimal::Decimal;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INVOICES: usize = 200;
const PAYMENTS_EACH: usize = 25;

fn billstream(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_billstream"));
    c.arg("--data-dir").arg(dir);
    // Small batches, so a kill lands in the middle of the stream.
    c.env("BILLSTREAM__PROCESSOR__MAX_BATCH", "100");
    // The restarted processor takes over once the group gives up on the killed one.
    c.env("BILLSTREAM__KAFKA__SESSION_TIMEOUT", "6s");
    c
}

/// Starts `billstream up` and returns it with its HTTP base URL.
fn up(dir: &Path, brokers: &str) -> (Child, String) {
    let mut child = billstream(dir)
        .args(["up", "--brokers", brokers, "--listen", "127.0.0.1:0", "--partitions", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("billstream up starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let http = loop {
        let line = lines.next().expect("up printed its address").expect("line");
        if let Some(url) = line.strip_prefix("http: ") {
            break url.to_string();
        }
    };
    // Keep reading, so the child never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, http)
}

fn applied(base: &str) -> u64 {
    let text = reqwest::blocking_get(&format!("{base}/metrics"));
    text.lines()
        .find(|l| l.starts_with("billstream_processor_messages_total{outcome=\"applied\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

mod reqwest {
    /// A blocking GET without pulling in a blocking HTTP client: curl is on every machine
    /// this runs on, but a raw socket is simpler still.
    pub fn blocking_get(url: &str) -> String {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let Ok(mut s) = std::net::TcpStream::connect(host) else { return String::new() };
        let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_processor_replays_without_applying_anything_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = EmbeddedBroker::start(1, 4).expect("embedded broker");
    let out = billstream(dir.path()).args(["tenant", "create", "--name", "crash"]).output().expect("tenant create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).expect("printed").trim().to_string();
    let (tenant, key) = (field("tenant_id:"), field("api_key:"));

    // The whole stream goes onto the topic first: creates, issues, then payments of 1.00
    // against invoices of 100.00, so a payment applied twice would show.
    let catalog = SchemaCatalog::embedded();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).set("linger.ms", "5").create().expect("producer");
    let mut stream = Vec::new();
    let envelope = |id: String, payload| CommandEnvelope {
        command_id: id,
        tenant_id: tenant.clone(),
        correlation_id: None,
        issued_at_ms: 1_790_000_000_000,
        idempotency_key: None,
        payload,
    };
    for i in 0..INVOICES {
        let invoice_id = format!("C-{i}");
        stream.push(envelope(format!("create-{i}"), CommandPayload::CreateInvoice(CreateInvoice {
            invoice_id: invoice_id.clone(),
            customer_id: "c".into(),
            currency: "EUR".parse().expect("EUR"),
            issue_date: "2026-11-01".parse().expect("date"),
            due_date: "2026-11-30".parse().expect("date"),
            lines: vec![LineItem { description: "x".into(), quantity: Decimal::ONE, unit_price: Decimal::ONE_HUNDRED, tax_rate: Decimal::ZERO }],
            metadata: Default::default(),
        })));
        stream.push(envelope(format!("issue-{i}"), CommandPayload::IssueInvoice { invoice_id }));
    }
    for k in 0..PAYMENTS_EACH {
        for i in 0..INVOICES {
            stream.push(envelope(format!("pay-{i}-{k}"), CommandPayload::RecordPayment(RecordPayment {
                invoice_id: format!("C-{i}"),
                amount: Decimal::ONE,
                currency: "EUR".parse().expect("EUR"),
                method: "card".into(),
                external_reference: None,
                received_on: "2026-11-05".parse().expect("date"),
            })));
        }
    }
    let total = stream.len() as u64;
    let sends: Vec<_> = stream
        .iter()
        .map(|c| {
            let bytes = catalog.encode_command(c).expect("encodes");
            let producer = producer.clone();
            let key = c.tenant_id.clone();
            async move { producer.send(FutureRecord::to("billing.commands").key(&key).payload(&bytes), Duration::from_secs(30)).await }
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.expect("acked");
    }

    // First run: kill -9 once a good part, but not all, is applied.
    let (mut first, base) = up(dir.path(), broker.bootstrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let n = applied(&base);
        if n >= total / 5 {
            break n;
        }
        assert!(Instant::now() < deadline, "first run applied only {n} of {total}");
        std::thread::sleep(Duration::from_millis(5));
    };
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    assert!(at_kill < total, "killed after everything was applied ({at_kill}); the test proves nothing");

    // Second run on the same store and broker: finish the stream.
    let (mut second, base) = up(dir.path(), broker.bootstrap());
    let api = Api::at(&base, &key);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, v) = api.get("/v1/summary?as_of=2026-11-15").await;
        let paid = v["currencies"][0]["paid_this_month"].as_str().unwrap_or("0").parse::<Decimal>().expect("decimal");
        if paid >= Decimal::from(INVOICES * PAYMENTS_EACH) {
            let outstanding: Decimal = v["currencies"][0]["outstanding"].as_str().unwrap_or("").parse().expect("decimal");
            assert_eq!(paid, Decimal::from(INVOICES * PAYMENTS_EACH), "paid exactly what was sent");
            assert_eq!(outstanding, Decimal::from(INVOICES * (100 - PAYMENTS_EACH)));
            break;
        }
        assert!(Instant::now() < deadline, "second run did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in (0..INVOICES).step_by(17) {
        let (_, inv) = api.get(&format!("/v1/invoices/C-{i}")).await;
        assert_eq!(inv["amount_paid"], "25.00", "{inv}");
        assert_eq!(inv["payments"].as_array().map(Vec::len), Some(PAYMENTS_EACH));
    }

    // Events may be published again by a replay, but always with the same ids.
    let events = consume_to_end(broker.bootstrap(), "billing.events", Duration::from_secs(60));
    let mut payment_events = HashSet::new();
    for m in &events {
        let e = catalog.decode_event(m.payload().expect("payload")).expect("decodes");
        if matches!(e.event, Event::PaymentApplied { .. }) {
            payment_events.insert(e.event_id);
        }
    }
    assert_eq!(payment_events.len(), INVOICES * PAYMENTS_EACH, "one distinct PaymentApplied event id per payment");

    // A graceful stop.
    let status = Command::new("kill").args(["-TERM", &second.id().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let exit = second.wait().expect("waits");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
