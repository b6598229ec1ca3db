// billstream patch: flushes of trees whose keys arrive nearly in order (see
// `Tree::set_ordered_keys`).

use crate::UserKey;

/// The share of a flush's entries, at its end, written as a table of their own: the next
/// flush's late keys fall among them. In billstream's load runs the late keys of a flush
/// reached back over at most 0.6 % of the one before (1,337 of 235,826 entries).
pub const TAIL_SHARE: usize = 16;

/// Where a flush of nearly ordered keys starts new tables: after its late keys (those not
/// above `boundary`, the largest key in the tree's tables), and before its last
/// `1 / TAIL_SHARE` of entries. The bulk in between overlaps nothing written before, nor the
/// late keys of the next flush, so compaction can move it down without rewriting it.
#[derive(Debug)]
pub struct FlushSplit {
    boundary: Option<UserKey>,
    tail_from: usize,
    seen: usize,
    late: bool,
}

impl FlushSplit {
    /// `boundary`: the largest key in the tree's tables (`None` if it has none); `entries`:
    /// how many items the flush will write (the sealed memtables' lengths; a flush that drops
    /// old versions writes fewer, which only makes the last table bigger).
    #[must_use]
    pub fn new(boundary: Option<UserKey>, entries: usize) -> Self {
        Self {
            late: boundary.is_some(),
            boundary,
            tail_from: entries - entries / TAIL_SHARE,
            seen: 0,
        }
    }

    /// Called with each item's key, in order, before it is written: whether a new table
    /// starts at it (the writer keeps versions of one key together in any case).
    pub fn starts_table(&mut self, key: &[u8]) -> bool {
        let mut starts = false;

        if self.late
            && self
                .boundary
                .as_ref()
                .is_some_and(|boundary| key > boundary.as_ref())
        {
            self.late = false;
            starts = self.seen > 0;
        }

        if self.seen == self.tail_from && self.seen > 0 {
            starts = true;
        }

        self.seen += 1;
        starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_log::test;

    fn starts(boundary: Option<&[u8]>, keys: &[&[u8]]) -> Vec<usize> {
        let mut split = FlushSplit::new(boundary.map(UserKey::from), keys.len());
        keys.iter()
            .enumerate()
            .filter(|(_, key)| split.starts_table(key))
            .map(|(i, _)| i)
            .collect()
    }

    fn keys(n: u32) -> Vec<Vec<u8>> {
        (0..n).map(|i| i.to_be_bytes().to_vec()).collect()
    }

    #[test]
    fn splits_after_late_keys_and_before_the_tail() {
        let owned = keys(160);
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();

        // Keys 0..=4 are not above the boundary (4); the tail is the last 160 / 16 = 10.
        assert_eq!(starts(Some(&4u32.to_be_bytes()), &keys), vec![5, 150]);
        // Nothing in the tree yet: only the tail.
        assert_eq!(starts(None, &keys), vec![150]);
        // Every key above the boundary: no table of late keys.
        assert_eq!(starts(Some(&[0, 0, 0]), &keys), vec![150]);
    }

    #[test]
    fn a_flush_entirely_below_the_boundary_still_has_its_tail() {
        let owned = keys(32);
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();

        assert_eq!(starts(Some(&[0xff; 4]), &keys), vec![30]);
    }

    #[test]
    fn a_small_flush_is_one_table() {
        let owned = keys(15);
        let keys: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();

        // 15 / 16 = 0: no tail; the late-key split still applies.
        assert_eq!(starts(None, &keys), Vec::<usize>::new());
        assert_eq!(starts(Some(&2u32.to_be_bytes()), &keys), vec![3]);
    }
}
