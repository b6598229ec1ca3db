//! The hot-store conformance suite against each backend.

use billstream_processors::store::{FjallConfig, FjallStore, conformance};

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
    {
        let store = FjallStore::open(&config).expect("open");
        use billstream_processors::HotStore;
        use billstream_processors::store::Mutation;
        store.apply(&[Mutation::PutInvoice { invoice: inv.clone(), bucket: 0, previous_status: None }]).await.expect("write");
        let second = FjallStore::open(&config).expect_err("locked");
        assert!(second.to_string().contains("in use"), "{second}");
    }
    let store = FjallStore::open(&config).expect("reopen");
    use billstream_processors::HotStore;
    assert_eq!(store.get_invoice("t", "i").await.expect("read"), Some(inv));
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
        store.apply(&[Mutation::PutInvoice { invoice: inv, bucket: 0, previous_status: None }]).await.expect("write");
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
        Err(e @ StoreError::Format { found: 1, expected: 3, .. }) => {
            assert!(e.to_string().contains("format 1"), "{e}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }

    // Format 2 (amounts as text) and a marker from a future build are refused too.
    for marker in [2u32, 99] {
        {
            let db = fjall::Database::builder(dir.path()).open().expect("raw open");
            let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
            meta.insert("format", marker.to_be_bytes()).expect("marker");
            db.persist(fjall::PersistMode::SyncAll).expect("persist");
        }
        match FjallStore::open(&config) {
            Err(StoreError::Format { found, expected: 3, .. }) if found == marker => {}
            other => panic!("expected a format error for {marker}, got {other:?}"),
        }
    }
}
