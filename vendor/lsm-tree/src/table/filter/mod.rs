// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

pub mod bit_array;
pub mod block;
pub mod blocked;
pub mod standard_bloom;

use standard_bloom::Builder as StandardBloomFilterBuilder;

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum BloomConstructionPolicy {
    BitsPerKey(f32),
    FalsePositiveRate(f32),
    /// billstream patch: as `BitsPerKey`, in a cache-line-blocked filter ([`blocked`]).
    /// Never persisted: a tree's writers switch to it when its owner turns blocked filters
    /// on ([`crate::Tree::set_blocked_filters`]).
    BlockedBitsPerKey(f32),
    /// billstream patch: as `FalsePositiveRate`, in a cache-line-blocked filter.
    BlockedFalsePositiveRate(f32),
}

impl Default for BloomConstructionPolicy {
    fn default() -> Self {
        Self::BitsPerKey(10.0)
    }
}

/// billstream patch: a filter being built, of either kind.
pub enum FilterBuilder {
    Standard(StandardBloomFilterBuilder),
    Blocked(blocked::Builder),
}

impl FilterBuilder {
    /// Adds a key hash.
    pub fn set_with_hash(&mut self, hash: u64) {
        match self {
            Self::Standard(b) => b.set_with_hash(hash),
            Self::Blocked(b) => b.set_with_hash(hash),
        }
    }

    /// The filter block's bytes.
    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        match self {
            Self::Standard(b) => b.build(),
            Self::Blocked(b) => b.build(),
        }
    }
}

impl BloomConstructionPolicy {
    #[must_use]
    pub fn init(&self, n: usize) -> FilterBuilder {
        use FilterBuilder::{Blocked, Standard};

        match self {
            Self::BitsPerKey(bpk) => Standard(StandardBloomFilterBuilder::with_bpk(n, *bpk)),
            Self::FalsePositiveRate(fpr) => {
                Standard(StandardBloomFilterBuilder::with_fp_rate(n, *fpr))
            }
            Self::BlockedBitsPerKey(bpk) => Blocked(blocked::Builder::with_bpk(n, *bpk)),
            Self::BlockedFalsePositiveRate(fpr) => {
                Blocked(blocked::Builder::with_fp_rate(n, *fpr))
            }
        }
    }

    /// billstream patch: the same policy in a blocked filter if `blocked`, else itself.
    #[must_use]
    pub fn blocked_if(self, blocked: bool) -> Self {
        match self {
            Self::BitsPerKey(bpk) if blocked => Self::BlockedBitsPerKey(bpk),
            Self::FalsePositiveRate(fpr) if blocked => Self::BlockedFalsePositiveRate(fpr),
            other => other,
        }
    }

    #[must_use]
    pub fn is_active(&self) -> bool {
        match self {
            Self::BitsPerKey(bpk) | Self::BlockedBitsPerKey(bpk) => *bpk > 0.0,
            Self::FalsePositiveRate(fpr) | Self::BlockedFalsePositiveRate(fpr) => *fpr > 0.0,
        }
    }

    /// Returns the estimated filter size in bytes.
    #[must_use]
    pub fn estimated_filter_size(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }

        #[expect(
            clippy::cast_precision_loss,
            reason = "truncation is fine because this is an estimation"
        )]
        match self {
            Self::BitsPerKey(bpk) | Self::BlockedBitsPerKey(bpk) => {
                (*bpk * (n as f32)) as usize / 8
            }
            Self::FalsePositiveRate(fpr) | Self::BlockedFalsePositiveRate(fpr) => {
                let m = StandardBloomFilterBuilder::calculate_m(n, *fpr);
                let bpk = (m / n) as f32;
                (bpk * (n as f32)) as usize / 8
            }
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum FilterType {
    StandardBloom,
    BlockedBloom,
    /// billstream patch: [`blocked`]. A tag of its own, not upstream's `BlockedBloom` (1,
    /// reserved there for a layout of its own), so that no other build of lsm-tree can read
    /// these filters as something else: it reports an invalid tag instead.
    CacheLineBlocked,
}

/// The tag of [`FilterType::CacheLineBlocked`].
const CACHE_LINE_BLOCKED_TAG: u8 = 0xB5;

impl TryFrom<u8> for FilterType {
    type Error = crate::Error;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Self::StandardBloom),
            1 => Ok(Self::BlockedBloom),
            CACHE_LINE_BLOCKED_TAG => Ok(Self::CacheLineBlocked),
            _ => Err(crate::Error::InvalidTag(("FilterType", value))),
        }
    }
}

impl From<FilterType> for u8 {
    fn from(value: FilterType) -> Self {
        match value {
            FilterType::StandardBloom => 0,
            FilterType::BlockedBloom => 1,
            FilterType::CacheLineBlocked => CACHE_LINE_BLOCKED_TAG,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_log::test;

    #[test]
    fn bloom_estimated_size_bpk() {
        let policy = BloomConstructionPolicy::BitsPerKey(10.0);
        let n = 1_000_000;
        let estimated_size = policy.estimated_filter_size(n);
        // For 1 million keys and 10 bits per key, the size should be around 1.25 MB
        assert_eq!(estimated_size, 1_250_000);
    }

    #[test]
    fn bloom_estimated_size_fpr() {
        let policy = BloomConstructionPolicy::FalsePositiveRate(0.01);
        let n = 1_000_000;
        let estimated_size = policy.estimated_filter_size(n);
        // For 1 million keys and 1% false positive rate, the size should be around 1.2 MB
        assert!((estimated_size as f32) < 1_300_000.0);
        assert!((estimated_size as f32) > 1_100_000.0);
    }
}
