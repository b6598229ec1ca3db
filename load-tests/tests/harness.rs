//! The harness itself, in a tiny configuration: it measures a real pipeline end to end,
//! and its loss check fails a run whose accepted commands are never seen applied.
//!
//! Needs the `billstream` binary next to `billstream-load` (as `cargo test --workspace`
//! builds it).

use serde_json::Value;
use std::process::Command;

/// A tiny steady run (400 commands/s for two seconds) with `extra` flags.
fn harness(dir: &std::path::Path, extra: &[&str]) -> (std::process::ExitStatus, Value) {
    let steady = ["steady", "--duration", "2s", "--rate", "400", "--batch", "40", "--tenants", "3"];
    run(dir, &[&steady[..], extra].concat())
}

/// Runs `billstream-load` with `args` on a small embedded pipeline under `dir`; its exit status
/// and JSON report.
fn run(dir: &std::path::Path, args: &[&str]) -> (std::process::ExitStatus, Value) {
    let report = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_billstream-load"))
        .args(args)
        .args(["--raw-messages", "2000", "--partitions", "4", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--json")
        .arg(&report)
        .output()
        .expect("billstream-load runs");
    let json = std::fs::read_to_string(&report)
        .unwrap_or_else(|_| panic!("no report; stderr:\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status, serde_json::from_str(&json).expect("report is JSON"))
}

/// The processors' own counts of the run's messages add up to the messages the gateway
/// accepted, every retried payment (same Idempotency-Key) was recognised as a duplicate, and
/// every command a domain rule must refuse was refused (and nothing else).
fn assert_outcomes_add_up(r: &Value) {
    let o = &r["details"]["processor_outcomes"];
    let count = |k: &str| o[k].as_u64().unwrap_or_else(|| panic!("processor_outcomes.{k} in {r}"));
    let total = count("applied") + count("rejected") + count("duplicate") + count("dlq");
    assert_eq!(Some(total), r["details"]["accepted_items"].as_u64(), "{r}");
    assert_eq!(Some(count("duplicate")), r["details"]["generated"]["retries"].as_u64(), "{r}");
    assert_eq!(Some(count("rejected")), r["details"]["generated"]["invalid_in_domain"].as_u64(), "{r}");
    assert_eq!(count("dlq"), 0, "{r}");
    assert!(count("applied") > 0, "{r}");
}

#[test]
fn a_tiny_steady_run_applies_everything_and_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, r) = harness(dir.path(), &[]);
    assert!(status.success(), "{r}");
    assert_eq!(r["scenario"], "steady");
    assert_eq!(r["lost"], 0);
    let accepted = r["details"]["accepted_commands"].as_u64().expect("count");
    assert!(accepted > 300, "{r}");
    assert!(r["details"]["refused_by_gateway"].as_u64() > Some(0) || r["details"]["generated"]["invalid_at_gateway"] == 0);
    for key in ["accepted_per_s", "applied_per_s", "raw_consume_per_s", "pipeline_over_raw", "cpu_s_per_1k", "peak_rss_mb"] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
    }
    for lat in ["ingest_ack", "ingest_to_applied"] {
        for p in ["p50", "p99", "p999", "max"] {
            assert!(r["latency_ms"][lat][p].as_f64().is_some(), "{lat}.{p} in {r}");
        }
    }
    assert_outcomes_add_up(&r);
    assert_eq!(r["details"]["unmatched_events"], 0, "every event seen is of a command the run sent: {r}");
    // The CPU the pipeline's figure leaves out: the broker the harness hosts, and its own.
    for key in ["cpu_s_per_1k_embedded_broker", "cpu_s_per_1k_harness"] {
        assert!(r["details"][key].as_f64().is_some_and(|v| v >= 0.0), "{key} in {r}");
    }
    // The pipeline's CPU by thread, read from its /proc: its own threads are named there.
    let threads = r["details"]["cpu_s_per_1k_by_thread"].as_object().unwrap_or_else(|| panic!("by thread in {r}"));
    for name in ["billstream-comm", "billstream-proc", "tokio-rt-worker", "fjall:worker", "(ended threads)"] {
        assert!(threads.get(name).and_then(Value::as_f64).is_some_and(|v| v >= 0.0), "{name} in {r}");
    }
    // The store's gauges, scraped through the run and once after it.
    let store = &r["details"]["store"];
    assert!(store["samples"].as_u64() >= Some(2), "{r}");
    for table in ["invoices", "invoice_locator", "commands", "commands_keyed", "audit_log"] {
        assert!(store["l0_tables_max"][table].is_u64() && store["disk_mib"][table].is_f64(), "{table} in {r}");
        // Bytes written over the run (a tiny run may flush nothing): the counters are there.
        for by in ["flushed", "compacted"] {
            assert!(store["written_mib"][table][by].as_f64().is_some_and(|v| v >= 0.0), "{table} {by} in {r}");
        }
    }
}

/// `--pipeline-env` reaches every process that opens the store, `tenant create` first: it
/// creates the store's tables, whose options are kept with them. (It went to `up` alone, so
/// a setting of a table's options never took effect.)
#[test]
fn the_pipeline_environment_reaches_the_process_that_creates_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_billstream-load"))
        .args(["steady", "--duration", "1s", "--rate", "100", "--tenants", "1", "--raw-messages", "0"])
        .args(["--pipeline-env", "BILLSTREAM__STORE__CACHE_MB=not-a-number", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("billstream-load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("tenant create failed") && stderr.contains("not-a-number"), "{stderr}");
    // The pipeline's error names the setting the user gave.
    assert!(stderr.contains("store.cache_mb (environment variable BILLSTREAM__STORE__CACHE_MB)"), "{stderr}");
}

#[test]
fn the_single_command_and_kafka_drivers_apply_everything_too() {
    // The same tiny run through one request per command, and as Avro straight to the topic.
    for driver in ["http-single", "kafka"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (status, r) = harness(dir.path(), &["--driver", driver]);
        assert!(status.success(), "{driver}: {r}");
        assert_eq!(r["lost"], 0, "{driver}: {r}");
        assert!(r["details"]["accepted_commands"].as_u64() > Some(300), "{driver}: {r}");
        assert_outcomes_add_up(&r);
        assert_eq!(r["details"]["unmatched_events"], 0, "{driver}: {r}");
    }
}

#[test]
fn the_loss_check_fails_a_run_whose_commands_are_never_seen() {
    // Watching a topic where outcomes never appear: every accepted command counts as lost.
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, r) = harness(dir.path(), &["--events-topic", "billing.dlq", "--settle-timeout", "2s"]);
    assert_eq!(status.code(), Some(1), "{r}");
    assert!(r["lost"].as_u64() > Some(0), "{r}");
    assert_eq!(r["lost"], r["details"]["accepted_commands"]);
}

#[test]
fn a_warmup_keeps_its_commands_out_of_the_latencies_but_not_out_of_the_loss_check() {
    // A warm-up longer than the run: everything is driven, applied and checked, nothing timed.
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, r) = harness(dir.path(), &["--warmup", "1h"]);
    assert!(status.success(), "{r}");
    assert_eq!(r["lost"], 0);
    assert!(r["details"]["accepted_commands"].as_u64() > Some(300), "{r}");
    assert_eq!(r["details"]["latency_warmup_s"], 3600.0);
    for lat in ["ingest_ack", "ingest_to_applied"] {
        assert_eq!(r["latency_ms"][lat]["count"], 0, "{lat} in {r}");
    }
}

#[test]
fn a_preload_fills_the_store_first_and_the_report_says_how_full() {
    // "1x": flat out for as long as the measured run, which is held to 400 commands/s.
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, r) = harness(dir.path(), &["--preload", "1x"]);
    assert!(status.success(), "{r}");
    assert_eq!(r["lost"], 0);
    let preloaded = r["details"]["preloaded_invoices"].as_u64().expect("count");
    let added = r["details"]["generated"]["invoices"].as_u64().expect("count");
    assert!(preloaded > added, "a flat-out preload outruns a run at 400/s: {r}");
    let ratio = r["details"]["store_fill_ratio"].as_f64().expect("ratio");
    assert!((ratio - preloaded as f64 / added as f64).abs() <= 0.05, "{r}");
    // Counted over the measured run only, not the preload before it.
    assert_outcomes_add_up(&r);
}

#[test]
fn a_pipeline_given_by_address_is_measured_on_its_own_runs_counts() {
    // A pipeline the harness did not start (`--url`), driven twice: the processors' counters
    // hold the first run's messages when the second, with a preload, reads its "before", and
    // each run's outcomes must still be its own.
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = billstream_load::target::default_binary().expect("billstream binary");
    let pipeline = billstream_load::target::spawn(&binary, &dir.path().join("pipeline"), 2, 4, &[]).expect("pipeline");
    let keys: Vec<String> = pipeline.tenants.iter().map(|t| format!("{}:{}", t.tenant_id, t.api_key)).collect();
    let mut remote = vec!["--url", pipeline.base.as_str(), "--brokers", pipeline.bootstrap.as_str()];
    for k in &keys {
        remote.extend(["--tenant", k.as_str()]);
    }
    for (run, extra) in [("first", &[][..]), ("second, preloaded", &["--preload", "1x"][..])] {
        let (status, r) = harness(dir.path(), &[&remote[..], extra].concat());
        assert!(status.success(), "{run} run: {r}");
        assert_eq!(r["lost"], 0, "{run} run: {r}");
        assert_outcomes_add_up(&r);
        // Not the harness's own pipeline: no raw ceiling, no process to read CPU from.
        assert!(r["raw_consume_per_s"].is_null() && r["cpu_s_per_1k"].is_null(), "{run} run: {r}");
    }
}

#[test]
fn a_query_run_times_point_lookups_and_list_pages_under_the_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let query = ["query", "--duration", "2s", "--rate", "400", "--batch", "40", "--tenants", "3"];
    let (status, r) = run(dir.path(), &[&query[..], &["--query-concurrency", "2", "--list-pct", "20", "--list-limit", "5"]].concat());
    assert!(status.success(), "{r}");
    assert_eq!((&r["scenario"], &r["lost"]), (&Value::from("query"), &Value::from(0)), "{r}");
    assert_outcomes_add_up(&r);
    let q = &r["details"]["query"];
    let n = |k: &str| q[k].as_u64().unwrap_or_else(|| panic!("query.{k} in {r}"));
    assert_eq!(n("errors"), 0, "{r}");
    // One request in five a list, the rest lookups of invoices the run had accepted: most
    // found (a 404 is an invoice accepted but not applied yet, more of them on a slow
    // machine, where applying takes longer).
    let requests = n("lists") + n("lookups_found") + n("lookups_not_found");
    let share = n("lists") as f64 / requests as f64;
    assert!(requests > 100 && (0.1..0.3).contains(&share), "{r}");
    assert!(n("lookups_found") > n("lookups_not_found"), "{r}");
    // Pages of at most five invoices, and not all empty.
    assert!(n("list_rows") > 0 && n("list_rows") <= 5 * n("lists"), "{r}");
    // No warm-up: every answer with 200 timed, in its own histogram.
    assert_eq!(r["latency_ms"]["query"]["count"].as_u64(), Some(n("lookups_found")), "{r}");
    assert_eq!(r["latency_ms"]["query_list"]["count"].as_u64(), Some(n("lists")), "{r}");
}

#[test]
fn max_ramps_until_a_step_fails_then_narrows_the_gap() {
    // One command per request, one request at a time: the driver itself caps the rate (a few
    // hundred to a few thousand a second), so some step of the ramp fails on any machine.
    // Steps of one second end with a larger share of their commands in flight than the
    // default 3 % leaves (a first step with nothing before it, on a slow machine), so the
    // test asks for 90 %: it is about the ramp, and checks below that the rule it was given
    // decided every step.
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, r) = run(
        dir.path(),
        &[
            "max", "--start-rate", "100", "--step", "1s", "--refine", "2", "--min-applied", "0.9", "--batch", "1",
            "--concurrency", "1", "--tenants", "3",
        ],
    );
    assert!(status.success(), "{r}");
    assert_eq!((&r["scenario"], &r["lost"]), (&Value::from("max"), &Value::from(0)), "{r}");
    let steps = r["details"]["max_steps"].as_array().expect("steps");
    let field = |s: &Value, k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
    // Each step's verdict is the rule's, as the report states it.
    let rule = &r["details"]["max_rule"];
    assert_eq!(rule["min_applied"].as_f64(), Some(0.9), "{r}");
    for s in steps {
        let rate = field(s, "rate");
        let min = field(rule, "min_applied");
        let passes = field(s, "offered_per_s") >= min * rate
            && field(s, "applied_share") >= min
            && field(s, "backlog") < field(rule, "max_backlog_s") * rate
            && field(s, "p99_ingest_to_applied_ms") <= field(rule, "max_p99_ms");
        assert_eq!(s["passed"], passes, "step {s} against the rule {rule}");
    }
    let (ramp, refining): (Vec<&Value>, Vec<&Value>) = steps.iter().partition(|s| s["refining"] == false);
    // The ramp: every step 1.3x the last, all passing but the last.
    let (last, passed) = ramp.split_last().expect("a ramp");
    assert_eq!(last["passed"], false, "{r}");
    assert!(!passed.is_empty() && passed.iter().all(|s| s["passed"] == true), "{r}");
    for w in ramp.windows(2) {
        assert!((field(w[1], "rate") / field(w[0], "rate") - 1.3).abs() < 0.01, "{r}");
    }
    // Then two steps, each strictly between the best pass and the lowest failure before it.
    assert_eq!(refining.len(), 2, "{r}");
    for (i, s) in steps.iter().enumerate().skip(ramp.len()) {
        let before = &steps[..i];
        let best_pass = before.iter().filter(|s| s["passed"] == true).map(|s| field(s, "rate")).fold(0.0, f64::max);
        let low_fail = before.iter().filter(|s| s["passed"] == false).map(|s| field(s, "rate")).fold(f64::INFINITY, f64::min);
        let rate = field(s, "rate");
        assert!(best_pass < rate && rate < low_fail, "step {i} at {rate}, between {best_pass} and {low_fail}: {r}");
    }
    let best = steps.iter().filter(|s| s["passed"] == true).map(|s| field(s, "rate")).fold(0.0, f64::max);
    assert_eq!(r["max_sustained_per_s"].as_f64(), Some(best), "{r}");
}
