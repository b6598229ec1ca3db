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
