//! The store's engine (vendored fjall, lsm-tree and crossbeam-skiplist, patched) inserts each
//! run of a write batch's items in one keyspace into the memtable as one ascending run, each
//! item searched for from the one before (`vendor/crossbeam-skiplist/PATCHED.md`). These tests
//! commit batches in every order — sorted as the store sorts them, descending, shuffled, with
//! keyspaces interleaved and tombstones — from several threads at once into memtables small
//! enough to be sealed and flushed under the writers, and read everything back against a
//! model, before and after the database is reopened.

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KEYSPACES: usize = 2;
const WRITERS: u64 = 3;

/// Each keyspace's rows as a writer left them: key → value, `None` once removed.
type Model = [BTreeMap<Vec<u8>, Option<Vec<u8>>>; KEYSPACES];

fn open(path: &std::path::Path) -> (Database, Vec<Keyspace>) {
    let db = Database::builder(path).open().expect("open");
    // 64 KiB memtables: sealed, rotated and flushed many times while the writers run.
    let keyspaces = (0..KEYSPACES)
        .map(|i| db.keyspace(&format!("t{i}"), || KeyspaceCreateOptions::default().max_memtable_size(64 * 1024)).expect("keyspace"))
        .collect();
    (db, keyspaces)
}

/// One writer's batches. Its keys end in its own byte, so the writers' keys interleave in
/// every memtable while each writer's model stays exact.
fn write(db: &Database, keyspaces: &[Keyspace], writer: u64) -> Model {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (writer + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut model: Model = Default::default();
    for round in 0..150 {
        // (keyspace, key, value or tombstone)
        let mut ops: Vec<(usize, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for _ in 0..rng.below(300) + 1 {
            let ks = rng.below(KEYSPACES as u64) as usize;
            let key = [rng.below(5_000).to_be_bytes().as_slice(), &[writer as u8]].concat();
            let value = (rng.below(4) != 0).then(|| rng.next().to_le_bytes().repeat(1 + rng.below(8) as usize));
            ops.push((ks, key, value));
        }
        match round % 4 {
            // As the store writes: by keyspace, then key; the last write of a key wins.
            0 => ops.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1))),
            1 => ops.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1))),
            // Sorted by key with the keyspaces interleaved: runs of one or a few items.
            2 => ops.sort_by(|a, b| a.1.cmp(&b.1)),
            _ => {}
        }
        // A key written twice in one batch: which write wins depends on the memtable's order of
        // equal sequence numbers, so keep one write per key, as the store does.
        let mut seen = std::collections::HashSet::new();
        ops.retain(|(ks, key, _)| seen.insert((*ks, key.clone())));
        let mut batch = db.batch();
        for (ks, key, value) in &ops {
            match value {
                Some(v) => batch.insert(&keyspaces[*ks], key.clone(), v.clone()),
                None => batch.remove(&keyspaces[*ks], key.clone()),
            }
        }
        batch.commit().expect("commit");
        for (ks, key, value) in ops {
            model[ks].insert(key, value);
        }
    }
    model
}

fn check(keyspaces: &[Keyspace], model: &Model, when: &str) {
    for (i, ks) in keyspaces.iter().enumerate() {
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            model[i].iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone()))).collect();
        let got: Vec<(Vec<u8>, Vec<u8>)> = ks
            .iter()
            .map(|item| {
                let (k, v) = item.into_inner().expect("read");
                (k.to_vec(), v.to_vec())
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{when}: rows of keyspace t{i}");
        assert!(got == want, "{when}: keyspace t{i} differs from the model");
        for (k, v) in &model[i] {
            assert_eq!(ks.get(k).expect("get").map(|v| v.to_vec()), v.clone(), "{when}: t{i} key {k:?}");
        }
    }
}

#[test]
fn batches_in_every_order_from_several_writers_read_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, keyspaces) = open(dir.path());
    let shared = Arc::new((db, keyspaces));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let shared = shared.clone();
            std::thread::spawn(move || write(&shared.0, &shared.1, w))
        })
        .collect();
    let mut model: Model = Default::default();
    for w in writers {
        for (all, mine) in model.iter_mut().zip(w.join().expect("writer")) {
            all.extend(mine);
        }
    }
    let (db, keyspaces) = Arc::try_unwrap(shared).ok().expect("writers done");
    assert!(model.iter().all(|m| m.values().filter(|v| v.is_some()).count() > 1_000), "the run writes enough rows to matter");
    check(&keyspaces, &model, "after the writers");
    drop(keyspaces);
    drop(db);
    let (_db, keyspaces) = open(dir.path());
    check(&keyspaces, &model, "after reopening");
}
