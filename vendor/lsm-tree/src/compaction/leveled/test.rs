use super::*;
use crate::{AbstractTree, Config, SequenceNumberCounter};
use std::sync::Arc;
use test_log::test;

#[test]
fn leveled_empty_levels() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    let strategy = Arc::new(Strategy::default());
    tree.compact(strategy, 0)?;

    assert_eq!(0, tree.table_count());
    Ok(())
}

#[test]
fn leveled_l0_below_limit() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    for i in 0..3u8 {
        tree.insert([b'k', i].as_slice(), "v", 0);
        tree.flush_active_memtable(0)?;
    }

    let before = tree.table_count();
    assert_eq!(3, before);

    let strategy = Arc::new(Strategy::default());
    tree.compact(strategy, 0)?;

    assert_eq!(before, tree.table_count());

    Ok(())
}

#[test]
fn leveled_l0_reached_limit() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    for i in 0..4u8 {
        // NOTE: Tables need to overlap
        tree.insert("a", "v", 0);
        tree.insert([b'k', i].as_slice(), "v", 0);
        tree.insert("z", "v", 0);
        tree.flush_active_memtable(0)?;
    }

    assert_eq!(4, tree.table_count());

    let strategy = Arc::new(Strategy::default());
    tree.compact(strategy, 0)?;

    assert_eq!(1, tree.table_count());

    Ok(())
}

#[test]
fn leveled_l0_reached_limit_disjoint() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    for i in 0..4u8 {
        tree.insert([b'k', i].as_slice(), "v", 0);
        tree.flush_active_memtable(0)?;
    }

    assert_eq!(4, tree.table_count());

    let strategy = Arc::new(Strategy::default());
    tree.compact(strategy, 0)?;

    assert_eq!(4, tree.table_count());

    Ok(())
}

#[test]
fn leveled_l0_reached_limit_disjoint_l1() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    for i in 0..4 {
        // NOTE: Tables need to overlap
        tree.insert("a", "v", i);
        tree.insert("b", "v", i);
        tree.flush_active_memtable(0)?;
    }

    let fifo = Arc::new(Strategy::default());
    tree.compact(fifo, 0)?;

    assert_eq!(1, tree.table_count());

    for i in 0..4u8 {
        tree.insert([b'k', i].as_slice(), "v", 0);
        tree.flush_active_memtable(0)?;
    }

    assert_eq!(5, tree.table_count());

    let strategy = Arc::new(Strategy::default());
    tree.compact(strategy, 0)?;

    assert_eq!(5, tree.table_count());

    Ok(())
}

#[test]
#[expect(clippy::unwrap_used)]
fn leveled_sequential_inserts() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    let strategy = Arc::new(Strategy {
        target_size: 1,
        ..Default::default()
    });

    let mut table_count = 0;

    for k in 0u64..100 {
        table_count += 1;

        tree.insert(k.to_be_bytes(), "", 0);
        tree.flush_active_memtable(0)?;

        assert_eq!(table_count, tree.table_count());
        tree.compact(strategy.clone(), 0)?;
        assert_eq!(table_count, tree.table_count());

        for idx in 1..=5 {
            assert_eq!(
                0,
                tree.current_version().level(idx).unwrap().len(),
                "no tables should be in intermediary level (L{idx})",
            );
        }
    }

    Ok(())
}

// billstream patch: trees of nearly ordered keys (`Tree::set_ordered_keys`).

/// Time-ordered keys from four writers, one of which lags: each round's flush holds the
/// keys of `ROUND` ticks, minus the lagging writer's last `LAG` ticks, which arrive in the
/// next round (late keys, below the largest key already flushed). Round 0 also brings a key
/// above all the others, round 2 one from long ago. Flushes, compacts after every
/// `compact_every` flushes (a compaction that falls behind leaves flushes that overlap one
/// another in level 0), reads every key back, and returns (bytes flushed, bytes compacted).
fn ordered_rounds(ordered: bool, compact_every: u32) -> crate::Result<(u64, u64)> {
    const ROUND: u32 = 2_000;
    const LAG: u32 = 30;
    const ROUNDS: u32 = 12;
    const FAR_AHEAD: u32 = 99_999_999;

    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;
    if let crate::AnyTree::Standard(t) = &tree {
        t.set_ordered_keys(ordered);
    }
    let strategy = Arc::new(Strategy::default());
    let key = |tick: u32, writer: u32| format!("{tick:08}-{writer}");
    let value = |tick: u32, writer: u32| format!("value of {tick} from {writer} {}", "x".repeat(40));

    let mut seqno = 0;
    let mut insert = |tick: u32, writer: u32| {
        tree.insert(key(tick, writer), value(tick, writer), seqno);
        seqno += 1;
    };
    for round in 0..ROUNDS {
        let start = round * ROUND;
        if round > 0 {
            for tick in start - LAG..start {
                insert(tick, 3);
            }
        }
        if round == 0 {
            // After all the others, with another first byte ('9', theirs '0'), as a key of
            // another form would be (a producer's own id kept as text, say): a stream of its
            // own, which later flushes are not late for.
            insert(FAR_AHEAD, 9);
        }
        if round == 2 {
            insert(7, 9);
        }
        for tick in start..start + ROUND {
            for writer in 0..3 {
                insert(tick, writer);
            }
            if tick < start + ROUND - LAG {
                insert(tick, 3);
            }
        }
        tree.flush_active_memtable(0)?;
        if round % compact_every == compact_every - 1 {
            for _ in 0..6 {
                tree.compact(strategy.clone(), 0)?;
            }
        }

        let version = tree.current_version();
        for idx in 1..version.level_count() {
            let level = version.level(idx).expect("level exists");
            assert!(
                level.is_empty() || level.is_disjoint(),
                "level {idx} after round {round}"
            );
        }
    }

    let last = ROUNDS * ROUND - LAG;
    for tick in 0..ROUNDS * ROUND {
        for writer in 0..4 {
            let expected = (writer < 3 || tick < last).then(|| value(tick, writer));
            let got = tree.get(key(tick, writer), crate::SeqNo::MAX)?;
            assert_eq!(
                got.as_deref(),
                expected.as_deref().map(str::as_bytes),
                "{}",
                key(tick, writer)
            );
        }
    }
    for (tick, writer) in [(7, 9), (FAR_AHEAD, 9)] {
        assert_eq!(
            tree.get(key(tick, writer), crate::SeqNo::MAX)?.as_deref(),
            Some(value(tick, writer).as_bytes())
        );
    }

    let crate::AnyTree::Standard(t) = &tree else {
        unreachable!("a standard tree")
    };
    Ok(t.written_bytes())
}

#[test]
fn leveled_ordered_keys_move_the_bulk_and_merge_only_late_keys() -> crate::Result<()> {
    let (flushed, compacted) = ordered_rounds(true, 1)?;
    let (flushed_behind, compacted_behind) = ordered_rounds(true, 3)?;
    let (flushed_plain, compacted_plain) = ordered_rounds(false, 1)?;

    // Each flush's late keys merge with the previous flush's last sixteenth; the rest moves.
    // Round 2's key from long ago merges that flush's late keys with all before them once.
    assert!(
        compacted * 3 < flushed,
        "ordered: {compacted} bytes compacted for {flushed} flushed"
    );
    // The same when three flushes wait in level 0, each one's late keys overlapping the one
    // before: the older goes down first, and the late keys follow.
    assert!(
        compacted_behind * 3 < flushed_behind,
        "ordered, compaction behind: {compacted_behind} bytes compacted for {flushed_behind} flushed"
    );
    // Without it every flushed table is merged on its way to level 1.
    assert!(
        compacted_plain > flushed_plain,
        "plain: {compacted_plain} bytes compacted for {flushed_plain} flushed"
    );
    Ok(())
}

// billstream patch: a moved table takes its new level's pins (`Table::with_pinning`).
#[test]
fn leveled_moved_table_takes_the_pins_of_its_new_level() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;

    for i in 0..2_000u32 {
        tree.insert(i.to_be_bytes(), "v", 0);
    }
    tree.flush_active_memtable(0)?;

    // Level 0 pins both (the default policies: index in levels 0 and 1, filter in 0).
    assert!(tree.pinned_filter_size() > 0);
    assert!(tree.pinned_block_index_size() > 0);

    // The only table, over an empty tree: moved to the last level, which pins neither.
    tree.compact(Arc::new(Strategy::default()), 0)?;
    let version = tree.current_version();
    assert_eq!(1, version.level(6).expect("level exists").table_count());
    assert_eq!(0, tree.pinned_filter_size());
    assert_eq!(0, tree.pinned_block_index_size());

    for i in 0..2_000u32 {
        assert_eq!(Some(b"v".as_slice()), tree.get(i.to_be_bytes(), crate::SeqNo::MAX)?.as_deref());
    }
    assert!(tree.get(2_000u32.to_be_bytes(), crate::SeqNo::MAX)?.is_none());
    Ok(())
}

// billstream patch: a table reopened with other pins shares its file's deletion with the
// handle it was reopened from (`table::inner::FileLife`).
#[test]
fn leveled_reopened_table_file_outlives_both_handles() -> crate::Result<()> {
    let dir = tempfile::tempdir()?;
    let tree = Config::new(
        dir.path(),
        SequenceNumberCounter::default(),
        SequenceNumberCounter::default(),
    )
    .open()?;
    for i in 0..100u32 {
        tree.insert(i.to_be_bytes(), "v", 0);
    }
    tree.flush_active_memtable(0)?;
    let table = tree
        .current_version()
        .iter_tables()
        .next()
        .expect("a table")
        .clone();
    drop(tree);
    let path = (*table.path).clone();

    // Level 0 pinned its filter: reopened without.
    let reopened = table.with_pinning(false, false)?;
    assert!(table.pinned_filter_size() > 0);
    assert_eq!(0, reopened.pinned_filter_size());

    // Compacted away while an older version (a reader) still holds the first handle.
    reopened.mark_as_deleted();
    drop(reopened);
    assert!(path.exists(), "the first handle still reads the file");
    drop(table);
    assert!(!path.exists(), "the last handle removes the file");
    Ok(())
}
