//! billstream patch: `insert_ascending` inserts exactly what `insert` would, in any order,
//! with other threads inserting meanwhile.

use crossbeam_skiplist::SkipMap;
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
}

fn check(map: &SkipMap<u64, u64>, model: &BTreeMap<u64, u64>) {
    let got: Vec<(u64, u64)> = map.iter().map(|e| (*e.key(), *e.value())).collect();
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want);
    assert_eq!(map.len(), model.len());
    for (k, v) in model {
        assert_eq!(map.get(k).map(|e| *e.value()), Some(*v), "key {k}");
    }
}

#[test]
fn runs_in_every_order_match_single_inserts() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let map = SkipMap::new();
    let mut model = BTreeMap::new();
    for round in 0..300 {
        let len = (rng.next() % 400) as usize;
        // Keys from a narrow range, so runs interleave with what is there and repeat keys.
        let mut run: Vec<(u64, u64)> = (0..len).map(|_| (rng.next() % 20_000, rng.next())).collect();
        match round % 4 {
            0 => run.sort_by_key(|e| e.0),
            1 => run.sort_by_key(|e| std::cmp::Reverse(e.0)),
            2 => {
                // Ascending with a few keys out of place.
                run.sort_by_key(|e| e.0);
                for _ in 0..len / 10 {
                    let (a, b) = ((rng.next() as usize) % len.max(1), (rng.next() as usize) % len.max(1));
                    if len > 0 {
                        run.swap(a, b);
                    }
                }
            }
            _ => {}
        }
        for &(k, v) in &run {
            model.insert(k, v);
        }
        map.insert_ascending(run);
        check(&map, &model);
    }
}

#[test]
fn runs_with_concurrent_inserts_and_removals() {
    let map = Arc::new(SkipMap::new());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let map = map.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(t * 7919 + 1);
                let mut mine = BTreeMap::new();
                for _ in 0..200 {
                    // Each thread owns the keys equal to t modulo 4, so its model is exact.
                    let mut run: Vec<(u64, u64)> =
                        (0..200).map(|_| ((rng.next() % 50_000) * 4 + t, rng.next())).collect();
                    run.sort_by_key(|e| e.0);
                    for &(k, v) in &run {
                        mine.insert(k, v);
                    }
                    map.insert_ascending(run);
                    // Remove a few, so searches meet marked nodes.
                    for _ in 0..20 {
                        let k = (rng.next() % 50_000) * 4 + t;
                        if mine.remove(&k).is_some() {
                            assert!(map.remove(&k).is_some());
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let mut model = BTreeMap::new();
    for t in threads {
        model.extend(t.join().unwrap());
    }
    check(&map, &model);
}
