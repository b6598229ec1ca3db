// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

use super::{blocked, FilterType};
use crate::file::MAGIC_BYTES;
use crate::table::{filter::standard_bloom::StandardBloomFilterReader, Block};

#[derive(Clone)]
pub struct FilterBlock(Block);

impl FilterBlock {
    #[must_use]
    pub fn new(block: Block) -> Self {
        Self(block)
    }

    /// billstream patch: reads either kind of filter, by the type byte after the magic
    /// (tables written before the patch have standard ones).
    pub fn maybe_contains_hash(&self, hash: u64) -> crate::Result<bool> {
        let data = &self.0.data;
        if self.is_blocked() {
            return Ok(blocked::Reader::new(data)?.contains_hash(hash));
        }
        Ok(StandardBloomFilterReader::new(data)?.contains_hash(hash))
    }

    /// billstream patch: whether this is a cache-line-blocked filter.
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        self.0.data.get(MAGIC_BYTES.len()) == Some(&FilterType::CacheLineBlocked.into())
    }

    /// Returns the block size in bytes.
    #[must_use]
    pub fn size(&self) -> usize {
        self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Checksum;
    use crate::table::block::{BlockType, Header};
    use crate::table::filter::{blocked, standard_bloom};

    fn filter_block(bytes: Vec<u8>) -> FilterBlock {
        #[expect(clippy::cast_possible_truncation, reason = "a test filter")]
        let len = bytes.len() as u32;
        FilterBlock::new(Block {
            header: Header {
                block_type: BlockType::Filter,
                checksum: Checksum::from_raw(0),
                data_length: len,
                uncompressed_length: len,
            },
            data: bytes.into(),
        })
    }

    /// Tables written before the patch keep their standard filters: both kinds are read.
    #[test]
    fn reads_blocked_and_standard_filters() -> crate::Result<()> {
        let keys: Vec<u64> = (0..1_000u32).map(|i| crate::hash::hash64(&i.to_be_bytes())).collect();
        let absent: Vec<u64> = (1_000..11_000u32).map(|i| crate::hash::hash64(&i.to_be_bytes())).collect();

        let mut blocked = blocked::Builder::with_bpk(keys.len(), 10.0);
        let mut standard = standard_bloom::Builder::with_bpk(keys.len(), 10.0);
        for &h in &keys {
            blocked.set_with_hash(h);
            standard.set_with_hash(h);
        }
        for block in [filter_block(blocked.build()), filter_block(standard.build())] {
            for &h in &keys {
                assert!(block.maybe_contains_hash(h)?);
            }
            let false_positives = absent.iter().filter(|&&h| block.maybe_contains_hash(h).unwrap_or(true)).count();
            assert!(false_positives < 300, "{false_positives} of 10,000");
        }
        Ok(())
    }
}
