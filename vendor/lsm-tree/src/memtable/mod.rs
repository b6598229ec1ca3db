// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

mod filter;

pub use filter::MemtableFilter;

use crate::key::InternalKey;
use crate::{
    value::{InternalValue, SeqNo, UserValue},
    ValueType,
};
use crossbeam_skiplist::SkipMap;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicBool, AtomicU64};

pub use crate::tree::inner::MemtableId;

/// How many entries [`Memtable::flush_iter`] reads ahead of the one it returns.
const FLUSH_LOOKAHEAD: usize = 8;

/// Starts loading the first line of `bytes` into the cache (a heap slice's first line also
/// holds its reference count, just before it).
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The memtable serves as an intermediary, ephemeral, sorted storage for new items
///
/// When the Memtable exceeds some size, it should be flushed to a table.
pub struct Memtable {
    #[doc(hidden)]
    pub id: MemtableId,

    /// The actual content, stored in a lock-free skiplist.
    #[doc(hidden)]
    pub items: SkipMap<InternalKey, UserValue>,

    /// Approximate active memtable size.
    ///
    /// If this grows too large, a flush is triggered.
    pub(crate) approximate_size: AtomicU64,

    /// Highest encountered sequence number.
    ///
    /// This is used so that `get_highest_seqno` has O(1) complexity.
    pub(crate) highest_seqno: AtomicU64,

    pub(crate) requested_rotation: AtomicBool,

    /// billstream patch: a filter over the user keys inserted, if the tree asked for one
    /// ([`crate::Tree::set_memtable_filter_bytes`]): a point read of a key this memtable does
    /// not hold then costs a probe instead of a skiplist search.
    pub(crate) filter: Option<MemtableFilter>,
}

impl Memtable {
    /// Returns the memtable ID.
    pub fn id(&self) -> MemtableId {
        self.id
    }

    /// Returns `true` if the memtable was already flagged for rotation.
    pub fn is_flagged_for_rotation(&self) -> bool {
        self.requested_rotation
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Flags the memtable as requested for rotation.
    pub fn flag_rotated(&self) {
        self.requested_rotation
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    #[doc(hidden)]
    #[must_use]
    pub fn new(id: MemtableId) -> Self {
        Self::with_filter(id, 0)
    }

    /// billstream patch: a memtable with a key filter of about `filter_bytes` bytes (none if
    /// 0).
    #[doc(hidden)]
    #[must_use]
    pub fn with_filter(id: MemtableId, filter_bytes: usize) -> Self {
        Self {
            id,
            items: SkipMap::default(),
            approximate_size: AtomicU64::default(),
            highest_seqno: AtomicU64::default(),
            requested_rotation: AtomicBool::default(),
            filter: (filter_bytes > 0).then(|| MemtableFilter::new(filter_bytes)),
        }
    }

    /// Creates an iterator over all items.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = InternalValue> + '_ {
        self.items.iter().map(|entry| InternalValue {
            key: entry.key().clone(),
            value: entry.value().clone(),
        })
    }

    /// Iterates over all items in order, as [`Memtable::iter`] does, for a flush: it reads
    /// `FLUSH_LOOKAHEAD` entries ahead and prefetches their keys' and values' bytes.
    ///
    /// billstream (`PATCHED.md`): cloning an entry's key and value increments the reference
    /// counts in their heap allocations, lines nothing has touched since the insert; with one
    /// entry at a time each clone stalled on them (`ByteView::clone` was a tenth of fjall's
    /// workers' samples under load).
    pub fn flush_iter(&self) -> impl Iterator<Item = InternalValue> + '_ {
        let mut entries = self.items.iter();
        let mut ahead = std::collections::VecDeque::with_capacity(FLUSH_LOOKAHEAD);
        std::iter::from_fn(move || {
            while ahead.len() < FLUSH_LOOKAHEAD {
                let Some(entry) = entries.next() else { break };
                prefetch(entry.key().user_key.as_ref());
                prefetch(entry.value().as_ref());
                ahead.push_back(entry);
            }
            let entry = ahead.pop_front()?;
            Some(InternalValue {
                key: entry.key().clone(),
                value: entry.value().clone(),
            })
        })
    }

    /// Creates an iterator over a range of items.
    pub(crate) fn range<'a, R: RangeBounds<InternalKey> + 'a>(
        &'a self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = InternalValue> + 'a {
        self.items.range(range).map(|entry| InternalValue {
            key: entry.key().clone(),
            value: entry.value().clone(),
        })
    }

    /// Returns the item by key if it exists.
    ///
    /// The item with the highest seqno will be returned, if `seqno` is None.
    #[doc(hidden)]
    pub fn get(&self, key: &[u8], seqno: SeqNo) -> Option<InternalValue> {
        if seqno == 0 {
            return None;
        }

        // NOTE: This range start deserves some explanation...
        // InternalKeys are multi-sorted by 2 categories: user_key and Reverse(seqno). (tombstone doesn't really matter)
        // We search for the lowest entry that is greater or equal the user's prefix key
        // and has the seqno (or lower) we want (because the seqno is stored in reverse order)
        //
        // Example: We search for "abc"
        //
        // key -> seqno
        //
        // a   -> 7
        // abc -> 5 <<< This is the lowest key (highest seqno) that matches the key with seqno=None
        // abc -> 4
        // abc -> 3 <<< If searching for abc and seqno=4, we would get this
        // abcdef -> 6
        // abcdef -> 5
        //
        let lower_bound = InternalKey::new(key, seqno - 1, ValueType::Value);

        let mut iter = self
            .items
            .range(lower_bound..)
            .take_while(|entry| &*entry.key().user_key == key);

        iter.next().map(|entry| InternalValue {
            key: entry.key().clone(),
            value: entry.value().clone(),
        })
    }

    /// billstream patch: as [`Memtable::get`], answered from the filter (if any) when it
    /// rules the key out. `key_hash` is [`Memtable::key_hash`] of the key: the hash the
    /// tables' bloom filters use, so a point read computes it once for both.
    #[doc(hidden)]
    pub fn get_hashed(&self, key: &[u8], seqno: SeqNo, key_hash: u64) -> Option<InternalValue> {
        if self.filter.as_ref().is_some_and(|f| !f.may_contain(key_hash)) {
            return None;
        }
        self.get(key, seqno)
    }

    /// billstream patch: the hash a memtable's filter is keyed by — the tables' bloom-filter
    /// hash, one function for both, so that sharing it can never make a filter miss a key.
    #[doc(hidden)]
    #[must_use]
    pub fn key_hash(key: &[u8]) -> u64 {
        crate::table::filter::standard_bloom::Builder::get_hash(key)
    }

    /// Gets approximate size of memtable in bytes.
    pub fn size(&self) -> u64 {
        self.approximate_size
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts the number of items in the memtable.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Returns `true` if the memtable is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// billstream patch: an item's size as the memtable counts it, and its skiplist entry;
    /// sets the memtable filter's bits for its key first (before the item can be seen: a
    /// reader that finds it must not be told "absent"). Shared by [`Memtable::insert`] and
    /// [`Memtable::insert_ascending`].
    fn entry(&self, item: InternalValue) -> (u64, (InternalKey, UserValue)) {
        #[expect(
            clippy::expect_used,
            reason = "keys are limited to 16-bit length + values are limited to 32-bit length"
        )]
        let item_size =
            (item.key.user_key.len() + item.value.len() + std::mem::size_of::<InternalValue>())
                .try_into()
                .expect("should fit into u64");

        if let Some(filter) = &self.filter {
            filter.insert(Self::key_hash(&item.key.user_key));
        }

        let key = InternalKey::new(item.key.user_key, item.key.seqno, item.key.value_type);
        (item_size, (key, item.value))
    }

    /// Inserts an item into the memtable
    #[doc(hidden)]
    pub fn insert(&self, item: InternalValue) -> (u64, u64) {
        let seqno = item.key.seqno;
        let (item_size, (key, value)) = self.entry(item);

        let size_before = self
            .approximate_size
            .fetch_add(item_size, std::sync::atomic::Ordering::AcqRel);

        self.items.insert(key, value);

        self.highest_seqno
            .fetch_max(seqno, std::sync::atomic::Ordering::AcqRel);

        (item_size, size_before + item_size)
    }

    /// billstream patch: inserts `items` as [`Memtable::insert`] would, one after another,
    /// with the skiplist searching for each from where the one before landed while their keys
    /// ascend (`SkipMap::insert_ascending`, the patched crossbeam-skiplist next to this copy).
    /// A batch sorted by key inserts at a few comparisons per item instead of a walk from the
    /// skiplist's head. Returns the items' size and the memtable's new size.
    #[doc(hidden)]
    pub fn insert_ascending<I: IntoIterator<Item = InternalValue>>(&self, items: I) -> (u64, u64) {
        let mut added = 0u64;
        let mut highest = 0;
        let entries = items.into_iter().map(|item| {
            highest = highest.max(item.key.seqno);
            let (item_size, entry) = self.entry(item);
            added += item_size;
            entry
        });
        self.items.insert_ascending(entries);

        let size_before = self
            .approximate_size
            .fetch_add(added, std::sync::atomic::Ordering::AcqRel);
        self.highest_seqno
            .fetch_max(highest, std::sync::atomic::Ordering::AcqRel);

        (added, size_before + added)
    }

    /// Returns the highest sequence number in the memtable.
    pub fn get_highest_seqno(&self) -> Option<SeqNo> {
        if self.is_empty() {
            None
        } else {
            Some(
                self.highest_seqno
                    .load(std::sync::atomic::Ordering::Acquire),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValueType;
    use test_log::test;

    /// billstream patch: the flush's read-ahead iterator yields what `iter` yields, every
    /// entry once and in order, long and short (inline) keys and values alike, including the
    /// last few it has read ahead, and nothing for an empty memtable.
    #[test]
    fn memtable_flush_iter_matches_iter() {
        let memtable = Memtable::new(0);
        assert_eq!(memtable.flush_iter().count(), 0);
        for i in 0..1_000u64 {
            // Out of order, two versions of some keys, a tombstone, short and long bytes.
            let key = format!("key-{:04}{}", (i * 7919) % 1_000, "-long-enough-for-the-heap".repeat((i % 2) as usize));
            let value = "v".repeat((i % 40) as usize);
            memtable.insert(InternalValue::from_components(key.as_bytes(), value.as_bytes(), i + 1, ValueType::Value));
            if i % 10 == 0 {
                memtable.insert(InternalValue::from_components(key.as_bytes(), b"", i + 5_000, ValueType::Tombstone));
            }
        }
        let expected: Vec<InternalValue> = memtable.iter().collect();
        assert_eq!(expected.len(), 1_100);
        assert_eq!(memtable.flush_iter().collect::<Vec<_>>(), expected);
        for n in 1..=FLUSH_LOOKAHEAD + 1 {
            let small = Memtable::new(1);
            for i in 0..n {
                small.insert(InternalValue::from_components(format!("k{i}").as_bytes(), b"v", 1, ValueType::Value));
            }
            assert_eq!(small.flush_iter().collect::<Vec<_>>(), small.iter().collect::<Vec<_>>(), "{n} entries");
        }
    }

    /// billstream patch: a filtered memtable finds every key and version it holds, and
    /// rules out (nearly) all it does not.
    #[test]
    fn memtable_filter_point_reads() {
        use crate::hash::hash64;

        let memtable = Memtable::with_filter(0, 64 << 10);
        for i in 0..10_000u64 {
            let key = format!("key-{i}");
            memtable.insert(InternalValue::from_components(key.as_bytes(), b"old", i + 1, ValueType::Value));
            memtable.insert(InternalValue::from_components(key.as_bytes(), b"new", i + 100_000, ValueType::Value));
        }
        for i in 0..10_000u64 {
            let key = format!("key-{i}");
            let hash = hash64(key.as_bytes());
            let newest = memtable.get_hashed(key.as_bytes(), SeqNo::MAX, hash).expect("present");
            assert_eq!(&*newest.value, b"new");
            let older = memtable.get_hashed(key.as_bytes(), i + 2, hash).expect("older version");
            assert_eq!(&*older.value, b"old");
        }
        let passed = (0..10_000u64)
            .filter(|i| {
                let key = format!("other-{i}");
                memtable.filter.as_ref().expect("filter").may_contain(hash64(key.as_bytes()))
            })
            .count();
        assert!(passed < 200, "{passed} of 10,000 absent keys passed the filter");
        assert!(memtable.get_hashed(b"other-1", SeqNo::MAX, hash64(b"other-1")).is_none());
        assert!(Memtable::new(0).filter.is_none());
    }

    #[test]
    #[expect(clippy::unwrap_used)]
    fn memtable_mvcc_point_read() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            *b"hello-key-999991",
            *b"hello-value-999991",
            0,
            ValueType::Value,
        ));

        let item = memtable.get(b"hello-key-99999", SeqNo::MAX);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", SeqNo::MAX);
        assert_eq!(*b"hello-value-999991", &*item.unwrap().value);

        memtable.insert(InternalValue::from_components(
            *b"hello-key-999991",
            *b"hello-value-999991-2",
            1,
            ValueType::Value,
        ));

        let item = memtable.get(b"hello-key-99999", SeqNo::MAX);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", SeqNo::MAX);
        assert_eq!((*b"hello-value-999991-2"), &*item.unwrap().value);

        let item = memtable.get(b"hello-key-99999", 1);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", 1);
        assert_eq!((*b"hello-value-999991"), &*item.unwrap().value);

        let item = memtable.get(b"hello-key-99999", 2);
        assert_eq!(None, item);

        let item = memtable.get(b"hello-key-999991", 2);
        assert_eq!((*b"hello-value-999991-2"), &*item.unwrap().value);
    }

    #[test]
    fn memtable_get() {
        let memtable = Memtable::new(0);

        let value =
            InternalValue::from_components(b"abc".to_vec(), b"abc".to_vec(), 0, ValueType::Value);

        memtable.insert(value.clone());

        assert_eq!(Some(value), memtable.get(b"abc", SeqNo::MAX));
    }

    #[test]
    fn memtable_get_highest_seqno() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            1,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            2,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            3,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            4,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                4,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );
    }

    #[test]
    fn memtable_get_prefix() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc0".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            255,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                255,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc0".to_vec(),
                b"abc".to_vec(),
                0,
                ValueType::Value,
            )),
            memtable.get(b"abc0", SeqNo::MAX)
        );
    }

    #[test]
    fn memtable_get_old_version() {
        let memtable = Memtable::new(0);

        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            0,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            99,
            ValueType::Value,
        ));
        memtable.insert(InternalValue::from_components(
            b"abc".to_vec(),
            b"abc".to_vec(),
            255,
            ValueType::Value,
        ));

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                255,
                ValueType::Value,
            )),
            memtable.get(b"abc", SeqNo::MAX)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                99,
                ValueType::Value,
            )),
            memtable.get(b"abc", 100)
        );

        assert_eq!(
            Some(InternalValue::from_components(
                b"abc".to_vec(),
                b"abc".to_vec(),
                0,
                ValueType::Value,
            )),
            memtable.get(b"abc", 50)
        );
    }
}
