//! The hot-store conformance suite against each backend.

use billstream_processors::store::{FjallConfig, FjallStore, conformance};
use std::sync::Arc;

#[tokio::test]
async fn fjall_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(&FjallConfig::new(dir.path())).expect("open");
    conformance::run(&store).await;
}

#[tokio::test]
async fn fjall_keeps_state_across_reopen_and_refuses_a_second_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    let inv = conformance::sample_invoice("t", "i", 2025);
    // Large values live in blob files: they must be there after a reopen too.
    let large = conformance::large_invoice("t", "i-large", 2025);
    {
        let store = FjallStore::open(&config).expect("open");
        use billstream_processors::HotStore;
        use billstream_processors::store::Mutation;
        store.apply(&[Mutation::PutInvoice { invoice: Arc::new(inv.clone()), bucket: 0, previous_status: None }]).await.expect("write");
        store.apply(&[Mutation::PutInvoice { invoice: Arc::new(large.clone()), bucket: 0, previous_status: None }]).await.expect("write");
        store.flush_memtables().expect("flush");
        assert_eq!(store.get_invoice("t", "i-large").await.expect("read"), Some(large.clone()), "read from disk");
        let second = FjallStore::open(&config).expect_err("locked");
        assert!(second.to_string().contains("in use"), "{second}");
    }
    let store = FjallStore::open(&config).expect("reopen");
    use billstream_processors::HotStore;
    assert_eq!(store.get_invoice("t", "i").await.expect("read"), Some(inv));
    assert_eq!(store.get_invoice("t", "i-large").await.expect("read"), Some(large));
}

#[tokio::test]
async fn fjall_refuses_a_store_of_another_format() {
    use billstream_processors::store::Mutation;
    use billstream_processors::{HotStore, StoreError};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    {
        let store = FjallStore::open(&config).expect("open");
        let inv = conformance::sample_invoice("t", "i", 2025);
        store.apply(&[Mutation::PutInvoice { invoice: Arc::new(inv), bucket: 0, previous_status: None }]).await.expect("write");
    }
    // A new store was marked with this build's format, so it reopens.
    drop(FjallStore::open(&config).expect("reopen"));

    // What a store written before the format marker looks like: data, no marker.
    {
        let db = fjall::Database::builder(dir.path()).open().expect("raw open");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        meta.remove("format").expect("remove marker");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    match FjallStore::open(&config) {
        Err(e @ StoreError::Format { found: 1, expected: 11, .. }) => {
            assert!(e.to_string().contains("format 1"), "{e}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }

    let set_marker = |marker: u32| {
        let db = fjall::Database::builder(dir.path()).open().expect("raw open");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        meta.insert("format", marker.to_be_bytes()).expect("marker");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    };
    let marker = || {
        let db = fjall::Database::builder(dir.path()).open().expect("raw open");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        let v = meta.get("format").expect("read").expect("marked");
        u32::from_be_bytes(v[..].try_into().expect("4 bytes"))
    };
    // Format 2 (amounts as text), 3 (no newest ordered command id), 4 (the audit log by
    // tenant within a day), 5 (ids in keys as text), 6 (standard bloom filters), 7 (the audit
    // log by second of issue) and a marker from a future build are refused too, and stay
    // as they were.
    for found in [2u32, 3, 4, 5, 6, 7, 99] {
        set_marker(found);
        match FjallStore::open(&config) {
            Err(StoreError::Format { found: f, expected: 11, .. }) if f == found => {}
            other => panic!("expected a format error for {found}, got {other:?}"),
        }
        assert_eq!(marker(), found);
    }
    // Formats 8 (type names as text in outcome and audit rows), 9 (open items' values
    // holding their keys' fields) and 10 (derived ids' outcomes keyed by id first) are read as
    // they are: marked 11 when opened, so that a build of any of them refuses the store from
    // then on. Their rows read back in `format_8_rows_read_back_after_the_upgrade`,
    // `format_9_open_items_read_back_after_the_upgrade` and
    // `format_10_keyed_outcomes_read_back_after_the_upgrade` (the store's unit tests).
    for older in [8u32, 9, 10] {
        set_marker(older);
        drop(FjallStore::open(&config).unwrap_or_else(|e| panic!("a format-{older} store opens: {e}")));
        assert_eq!(marker(), 11);
    }
}

/// The audit log is keyed by the batch that wrote it: a reopened store numbers its batches on
/// from the newest row's, so new rows still follow every stored one (the log only appends),
/// and a tenant's day still reads back in issue order across both.
#[tokio::test]
async fn fjall_audit_batches_continue_after_reopen() {
    use billstream_processors::HotStore;
    use billstream_processors::store::{AuditEntry, AuditEvent, Mutation};
    use billstream_schemas::Date;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    let day = Date::from_days(20_500);
    let entry = |ms: i64, command: &str| {
        let issued_at_ms = i64::from(day.days()) * 86_400_000 + ms;
        Mutation::Audit(AuditEntry {
            tenant_id: "t_0123456789abcdef0123456789abcdef".into(),
            day,
            issued_at_ms,
            command_id: command.into(),
            invoice_id: "i".into(),
            events: vec![AuditEvent { kind: "invoice_issued".into(), detail: String::new() }],
        })
    };
    {
        let store = FjallStore::open(&config).expect("open");
        store.apply(&[entry(2_000, "b"), entry(3_000, "d")]).await.expect("write");
        store.apply(&[entry(2_500, "c")]).await.expect("write");
    }
    {
        let store = FjallStore::open(&config).expect("reopen");
        // Issued before everything stored: a partition that lagged across the restart.
        store.apply(&[entry(1_000, "a"), entry(4_000, "e")]).await.expect("write");
        let log: Vec<_> = store.audit("t_0123456789abcdef0123456789abcdef", day).await.expect("read").into_iter().map(|e| e.command_id).collect();
        assert_eq!(log, ["a", "b", "c", "d", "e"], "issue order across batches and opens");
    }
    // The rows in key order: each batch's after the one before, across the reopen.
    let db = fjall::Database::builder(dir.path()).open().expect("raw open");
    let audit = db.keyspace("audit_log", fjall::KeyspaceCreateOptions::default).expect("audit log");
    let batches: Vec<u64> = audit
        .iter()
        .map(|kv| u64::from_be_bytes(kv.key().expect("key")[..8].try_into().expect("8 bytes")))
        .collect();
    assert_eq!(batches.len(), 5);
    assert!(batches.windows(2).all(|w| w[0] <= w[1]), "{batches:?}");
    assert_eq!((batches[0], batches[2], batches[3]), (batches[1], batches[1] + 1, batches[2] + 1), "{batches:?}");
}

/// The store answers "not stored" for a time-ordered id newer than every one it holds without
/// reading the table; every id it does hold must still be found, whatever the order ids
/// arrive in, in whichever text form, and after a reopen.
#[tokio::test]
async fn fjall_finds_every_time_ordered_command_id_across_reopen() {
    use billstream_processors::HotStore;
    use billstream_processors::store::{CommandState, CommandStatus, Mutation};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    let v7 = |millis: u64, r: u8| uuid::Builder::from_unix_timestamp_millis(millis, &[r; 10]).into_uuid();
    let put = |id: String| Mutation::PutCommand {
        tenant_id: "t".into(),
        command_id: id,
        status: CommandStatus {
            command_type: "issue_invoice".into(),
            invoice_id: "i".into(),
            state: CommandState::Applied,
            issued_at_ms: 1,
            partition: 0,
            offset: 0,
        },
    };
    let base = 1_795_000_000_000;
    let newest = v7(base + 5_000, 1).hyphenated().to_string();
    // Newest first, then older ones, one in upper case and one braced (both parse as v7),
    // then one sharing the newest one's millisecond.
    let ids = [
        newest.clone(),
        v7(base, 2).hyphenated().to_string(),
        v7(base + 1, 3).hyphenated().to_string().to_uppercase(),
        v7(base + 2, 4).braced().to_string(),
        v7(base + 5_000, 0).hyphenated().to_string(),
    ];
    let later = v7(base + 9_000, 5).hyphenated().to_string();
    {
        let store = FjallStore::open(&config).expect("open");
        for id in &ids {
            assert_eq!(store.get_command("t", id).await.expect("read"), None, "{id} not written yet");
            store.apply(&[put(id.clone())]).await.expect("write");
            assert!(store.get_command("t", id).await.expect("read").is_some(), "{id} found right after its write");
        }
        for id in &ids {
            assert!(store.get_command("t", id).await.expect("read").is_some(), "{id} found after later writes");
        }
        assert_eq!(store.get_command("t", &later).await.expect("read"), None);
    }
    let store = FjallStore::open(&config).expect("reopen");
    for id in &ids {
        assert!(store.get_command("t", id).await.expect("read").is_some(), "{id} found after reopening");
    }
    assert_eq!(store.get_command("t", &later).await.expect("read"), None);
    store.apply(&[put(later.clone())]).await.expect("write");
    drop(store);
    let store = FjallStore::open(&config).expect("reopen");
    assert!(store.get_command("t", &later).await.expect("read").is_some(), "a later id found after the second reopen");
}

/// The derived (keyed) command id and the invoice id of row `i` of the test below.
fn keyed_row_ids(i: usize) -> (String, String) {
    (billstream_processors::domain::ids::command_id_for_key("t", &format!("key-{i}")), format!("inv-{i}"))
}

/// Keyed command outcomes and the invoice locator have bloom filters over their memtables'
/// keys (a read of an absent key is answered from the filter): every row written must still
/// be found, whether it sits in the memtable it was written to, a later one, a table on disk
/// or a memtable recovered from the journal after a reopen, and absent ones must read absent.
#[tokio::test]
async fn fjall_finds_every_keyed_command_and_invoice_across_memtables_and_reopen() {
    use billstream_processors::HotStore;
    use billstream_processors::store::{CommandState, CommandStatus, Mutation};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    let command = |i: usize| keyed_row_ids(i).0;
    let writes = |i: usize| {
        let (command_id, invoice_id) = keyed_row_ids(i);
        vec![
            Mutation::PutCommand {
                tenant_id: "t".into(),
                command_id,
                status: CommandStatus {
                    command_type: "record_payment".into(),
                    invoice_id: invoice_id.clone(),
                    state: CommandState::Applied,
                    issued_at_ms: 1,
                    partition: 0,
                    offset: i as i64,
                },
            },
            Mutation::PutInvoice { invoice: Arc::new(conformance::sample_invoice("t", &invoice_id, 2026)), bucket: 0, previous_status: None },
        ]
    };
    async fn check(store: &FjallStore, written: std::ops::Range<usize>, when: &str) {
        for i in written.clone() {
            let (id, invoice) = keyed_row_ids(i);
            assert!(store.get_command("t", &id).await.expect("read").is_some(), "command {i} found {when}");
            assert!(store.get_invoice("t", &invoice).await.expect("read").is_some(), "invoice {i} found {when}");
        }
        for i in written.end..written.end + 200 {
            let (id, invoice) = keyed_row_ids(i);
            assert_eq!(store.get_command("t", &id).await.expect("read"), None, "command {i} absent {when}");
            assert_eq!(store.get_invoice("t", &invoice).await.expect("read"), None, "invoice {i} absent {when}");
        }
    }
    {
        let store = FjallStore::open(&config).expect("open");
        // Three rounds: each written to a fresh memtable, read there, then flushed to disk.
        for round in 0..3 {
            let rows = round * 500..(round + 1) * 500;
            for i in rows.clone() {
                assert_eq!(store.get_command("t", &command(i)).await.expect("read"), None, "command {i} not written yet");
                store.apply(&writes(i)).await.expect("write");
                assert!(store.get_command("t", &command(i)).await.expect("read").is_some(), "command {i} right after its write");
            }
            check(&store, 0..rows.end, "in the memtable").await;
            store.flush_memtables().expect("flush");
            check(&store, 0..rows.end, "after a flush").await;
        }
        // Left in the memtable: recovered from the journal on reopen.
        for i in 1500..1800 {
            store.apply(&writes(i)).await.expect("write");
        }
    }
    let store = FjallStore::open(&config).expect("reopen");
    check(&store, 0..1800, "after reopening").await;
    for i in 1800..2000 {
        store.apply(&writes(i)).await.expect("write");
    }
    check(&store, 0..2000, "after writes following the reopen").await;
    store.flush_memtables().expect("flush");
    check(&store, 0..2000, "after the last flush").await;
}

/// `/metrics`' store gauges carry the engine's own figures: a write sits in a memtable, a
/// flush turns it into a disk table with bytes on disk, blob files included, and a second
/// flush over the same keys stays in level 0 (nothing to merge it with yet). The bytes written
/// count each flush's output once and compaction's apart.
#[tokio::test]
async fn fjall_reports_its_tables_to_prometheus() {
    use billstream_processors::HotStore;
    use billstream_processors::metrics::StoreMetrics;
    use billstream_processors::store::Mutation;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FjallStore::open(&FjallConfig::new(dir.path())).expect("open"));
    let registry = prometheus::Registry::new();
    StoreMetrics::register(&registry, store.clone()).expect("register");
    let scrape = || prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("encode");
    let value = |text: &str, series: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line[series.len()..].trim().parse().expect("a number")
    };

    let before = scrape();
    assert_eq!(value(&before, r#"billstream_store_l0_tables{table="invoices"} "#), 0);
    assert_eq!(value(&before, r#"billstream_store_disk_bytes{table="invoices"} "#), 0);
    for table in ["invoice_locator", "commands_keyed", "audit_log", "tenants"] {
        assert!(before.contains(&format!(r#"billstream_store_tables{{table="{table}"}} 0"#)), "{table} in\n{before}");
    }

    let large = conformance::large_invoice("t", "i-large", 2025);
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(large), bucket: 0, previous_status: None }]).await.expect("write");
    let written = scrape();
    assert!(value(&written, "billstream_store_memtable_bytes ") > 0, "{written}");
    assert_eq!(value(&written, r#"billstream_store_tables{table="invoices"} "#), 0, "not flushed yet");

    store.flush_memtables().expect("flush");
    let flushed = scrape();
    // The first table may be in level 0 or already moved down (nothing else was there).
    assert_eq!(value(&flushed, r#"billstream_store_tables{table="invoices"} "#), 1, "{flushed}");
    assert_eq!(value(&flushed, r#"billstream_store_blob_files{table="invoices"} "#), 1, "a large invoice goes to a blob file");
    assert!(value(&flushed, r#"billstream_store_disk_bytes{table="invoices"} "#) > 0, "{flushed}");
    assert!(value(&flushed, "billstream_store_journal_files ") >= 1, "{flushed}");
    assert_eq!(value(&flushed, "billstream_store_flushes_queued "), 0, "{flushed}");
    // Nothing compacted or deleted yet: what the flush wrote is what is on disk.
    let first_flush = value(&flushed, r#"billstream_store_flushed_bytes_total{table="invoices"} "#);
    assert_eq!(first_flush, value(&flushed, r#"billstream_store_disk_bytes{table="invoices"} "#), "{flushed}");
    assert_eq!(value(&flushed, r#"billstream_store_compacted_bytes_total{table="invoices"} "#), 0, "{flushed}");
    assert_eq!(value(&flushed, r#"billstream_store_flushed_bytes_total{table="audit_log"} "#), 0, "no rows, no table");

    let again = conformance::large_invoice("t", "i-large", 2025);
    store.apply(&[Mutation::PutInvoice { invoice: Arc::new(again), bucket: 0, previous_status: None }]).await.expect("write");
    store.flush_memtables().expect("flush");
    let overlapping = scrape();
    assert_eq!(value(&overlapping, r#"billstream_store_tables{table="invoices"} "#), 2, "{overlapping}");
    assert!(value(&overlapping, r#"billstream_store_l0_tables{table="invoices"} "#) >= 1, "{overlapping}");
    let both_flushes = value(&overlapping, r#"billstream_store_flushed_bytes_total{table="invoices"} "#);
    assert_eq!(both_flushes, value(&overlapping, r#"billstream_store_disk_bytes{table="invoices"} "#), "{overlapping}");
    assert!(both_flushes > first_flush, "{overlapping}");
    assert_eq!(value(&overlapping, r#"billstream_store_compacted_bytes_total{table="invoices"} "#), 0, "{overlapping}");

    // Merging the two tables writes one: counted as compaction, not as a flush, and no more
    // than what is on disk afterwards.
    store.compact_tables().expect("compact");
    let compacted = scrape();
    assert_eq!(value(&compacted, r#"billstream_store_tables{table="invoices"} "#), 1, "{compacted}");
    assert_eq!(value(&compacted, r#"billstream_store_flushed_bytes_total{table="invoices"} "#), both_flushes, "{compacted}");
    let merged = value(&compacted, r#"billstream_store_compacted_bytes_total{table="invoices"} "#);
    assert!(merged > 0 && merged <= value(&compacted, r#"billstream_store_disk_bytes{table="invoices"} "#), "{compacted}");
}
