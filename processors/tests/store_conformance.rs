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
        Err(e @ StoreError::Format { found: 1, expected: 7, .. }) => {
            assert!(e.to_string().contains("format 1"), "{e}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }

    // Format 2 (amounts as text), 3 (no newest ordered command id), 4 (the audit log by
    // tenant within a day), 5 (ids in keys as text) and a marker from a future build are
    // refused too. (6 is upgraded: the next test.)
    for marker in [2u32, 3, 4, 5, 99] {
        {
            let db = fjall::Database::builder(dir.path()).open().expect("raw open");
            let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
            meta.insert("format", marker.to_be_bytes()).expect("marker");
            db.persist(fjall::PersistMode::SyncAll).expect("persist");
        }
        match FjallStore::open(&config) {
            Err(StoreError::Format { found, expected: 7, .. }) if found == marker => {}
            other => panic!("expected a format error for {marker}, got {other:?}"),
        }
    }
}

/// A format-6 store (tables with lsm-tree's standard bloom filters) is marked 7 when opened and
/// keeps working: its tables are still read by key, new ones get blocked filters, and a build
/// of format 6 would now refuse it rather than meet filters it cannot read.
#[tokio::test]
async fn fjall_upgrades_a_format_6_store_in_place() {
    use billstream_processors::HotStore;
    use billstream_processors::store::Mutation;
    use fjall::AbstractTree;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = FjallConfig::new(dir.path());
    let old = conformance::sample_invoice("t", "old", 2025);
    let new = conformance::sample_invoice("t", "new", 2026);
    let put = |inv: &billstream_processors::domain::Invoice| Mutation::PutInvoice {
        invoice: Arc::new(inv.clone()),
        bucket: 0,
        previous_status: None,
    };
    let raw = || fjall::Database::builder(dir.path()).open().expect("raw open");
    let locator = |db: &fjall::Database| db.keyspace("invoice_locator", fjall::KeyspaceCreateOptions::default).expect("locator");
    {
        let store = FjallStore::open(&config).expect("open");
        store.apply(&[put(&old)]).await.expect("write");
    }
    // What format 6 wrote: tables flushed by an lsm-tree that builds standard filters (fjall
    // on its own), the marker set back to 6.
    {
        let db = raw();
        for name in ["invoices", "invoice_locator"] {
            let ks = db.keyspace(name, fjall::KeyspaceCreateOptions::default).expect("keyspace");
            ks.rotate_memtable_and_wait().expect("flush");
        }
        assert_eq!(locator(&db).tree.filter_kinds().expect("filters"), (0, 1), "a standard filter to start from");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        meta.insert("format", 6u32.to_be_bytes()).expect("marker");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    {
        let store = FjallStore::open(&config).expect("a format-6 store opens");
        assert_eq!(store.get_invoice("t", "old").await.expect("read"), Some(old.clone()), "read through a standard filter");
        store.apply(&[put(&new)]).await.expect("write");
        store.flush_memtables().expect("flush");
        assert_eq!(store.get_invoice("t", "new").await.expect("read"), Some(new.clone()));
        assert_eq!(store.get_invoice("t", "absent").await.expect("read"), None);
    }
    {
        let db = raw();
        assert_eq!(locator(&db).tree.filter_kinds().expect("filters"), (1, 1), "the new table's filter is blocked");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        let marker = meta.get("format").expect("read").expect("marker");
        assert_eq!(*marker, 7u32.to_be_bytes(), "marked with this format");
    }
    let store = FjallStore::open(&config).expect("reopen");
    assert_eq!(store.get_invoice("t", "old").await.expect("read"), Some(old));
    assert_eq!(store.get_invoice("t", "new").await.expect("read"), Some(new));
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
