// billstream patch (see PATCHED.md): a bloom filter over the keys of a memtable.

use std::sync::atomic::{AtomicU64, Ordering};

/// A register-blocked bloom filter: a key sets four bits of one 64-bit word, so an insert
/// and a probe each touch one cache line. Bits are only ever set, with atomic `or`s, so a
/// key inserted before a probe (in the happens-before sense) is always reported present.
pub struct MemtableFilter {
    words: Box<[AtomicU64]>,
}

impl MemtableFilter {
    /// A filter of about `bytes` bytes (rounded up to a power of two, at least 8, at most
    /// 2^40).
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        let words = (bytes / 8).clamp(1, 1 << 37).next_power_of_two();
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The word of a key hash (its low bits) and the four bits it sets there (six bits each
    /// from the top 24, which the word index never uses).
    fn locate(&self, hash: u64) -> (usize, u64) {
        #[expect(clippy::cast_possible_truncation, reason = "masked to the word count")]
        let word = (hash as usize) & (self.words.len() - 1);
        let bits = (0..4).fold(0u64, |m, i| m | 1 << ((hash >> (40 + 6 * i)) & 63));
        (word, bits)
    }

    /// Records a key hash.
    pub fn insert(&self, hash: u64) {
        let (word, bits) = self.locate(hash);
        #[expect(clippy::indexing_slicing, reason = "masked to the word count")]
        self.words[word].fetch_or(bits, Ordering::Release);
    }

    /// `false` only if no key of this hash was inserted.
    #[must_use]
    pub fn may_contain(&self, hash: u64) -> bool {
        let (word, bits) = self.locate(hash);
        #[expect(clippy::indexing_slicing, reason = "masked to the word count")]
        let set = self.words[word].load(Ordering::Acquire);
        set & bits == bits
    }
}

#[cfg(test)]
mod tests {
    use super::MemtableFilter;
    use crate::hash::hash64;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        // 1 MiB for 100,000 keys: 84 bits a key.
        let filter = MemtableFilter::new(1 << 20);
        for i in 0..100_000u32 {
            filter.insert(hash64(format!("key-{i}").as_bytes()));
        }
        for i in 0..100_000u32 {
            assert!(filter.may_contain(hash64(format!("key-{i}").as_bytes())), "key-{i} lost");
        }
        let false_positives = (0..100_000u32)
            .filter(|i| filter.may_contain(hash64(format!("other-{i}").as_bytes())))
            .count();
        assert!(false_positives < 500, "{false_positives} false positives of 100,000");
    }

    #[test]
    fn sizes_round_to_powers_of_two() {
        assert_eq!(MemtableFilter::new(0).words.len(), 1);
        assert_eq!(MemtableFilter::new(1000).words.len(), 128);
        assert_eq!(MemtableFilter::new(1 << 19).words.len(), 1 << 16);
    }
}
