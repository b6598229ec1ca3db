// billstream patch: flushes of trees whose keys arrive nearly in order (see
// `Tree::set_ordered_keys`).

use crate::{KeyRange, UserKey};

/// The share of a flush's entries, at its end, written as a table of their own: the next
/// flush's late keys fall among them. In billstream's load runs the late keys of a flush
/// reached back over at most 0.6 % of the one before (1,337 of 235,826 entries).
pub const TAIL_SHARE: usize = 16;

/// Where a flush of nearly ordered keys starts new tables.
///
/// Keys are taken as ordered within each first byte: a first byte is a stream of its own (in
/// billstream, the tag of a key's form, and keys of another form sort after all the ordered
/// ones). A new table starts
/// - where the first byte changes, so no table spans two streams;
/// - after a stream's late keys: those not above the largest key of the tables on disk that
///   lie wholly within that stream (tables that span streams, which this never writes, are
///   left out);
/// - before the flush's last `1 / TAIL_SHARE` of entries.
///
/// The bulk in between overlaps nothing written before, nor the late keys of the next flush,
/// so compaction can move it down without rewriting it.
#[derive(Debug)]
pub struct FlushSplit {
    /// Per stream (first byte), the largest key of the tables wholly within it.
    largest: Vec<(u8, UserKey)>,
    tail_from: usize,
    seen: usize,
    stream: Option<u8>,
    boundary: Option<UserKey>,
}

impl FlushSplit {
    /// `tables`: the key ranges of the tree's tables; `entries`: how many items the flush
    /// will write (the sealed memtables' lengths; a flush that drops old versions writes
    /// fewer, which only makes the last table bigger).
    #[must_use]
    pub fn new<'a>(tables: impl Iterator<Item = &'a KeyRange>, entries: usize) -> Self {
        let mut largest: Vec<(u8, UserKey)> = Vec::new();
        for range in tables {
            let (Some(&stream), Some(&last)) = (range.min().first(), range.max().first()) else {
                continue;
            };
            if stream != last {
                continue;
            }
            match largest.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, key)) if *key < *range.max() => *key = range.max().clone(),
                Some(_) => {}
                None => largest.push((stream, range.max().clone())),
            }
        }
        Self {
            largest,
            tail_from: entries - entries / TAIL_SHARE,
            seen: 0,
            stream: None,
            boundary: None,
        }
    }

    /// The largest key of the tables wholly within the stream of first byte `stream`.
    fn boundary(&self, stream: u8) -> Option<UserKey> {
        self.largest
            .iter()
            .find(|(s, _)| *s == stream)
            .map(|(_, key)| key.clone())
    }

    /// Called with each item's key, in order, before it is written: whether a new table
    /// starts at it (the writer keeps versions of one key together in any case).
    pub fn starts_table(&mut self, key: &[u8]) -> bool {
        let mut starts = false;

        let stream = key.first().copied();
        if stream != self.stream {
            starts = self.seen > 0;
            self.stream = stream;
            self.boundary = stream.and_then(|stream| self.boundary(stream));
        }

        // Past the stream's late keys: a new table, unless one just started.
        if self
            .boundary
            .as_ref()
            .is_some_and(|boundary| key > boundary.as_ref())
        {
            self.boundary = None;
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

    fn range(min: &[u8], max: &[u8]) -> KeyRange {
        KeyRange::new((min.into(), max.into()))
    }

    /// The indexes of `keys` at which a new table starts, over tables of `ranges`.
    fn starts(ranges: &[KeyRange], keys: &[Vec<u8>]) -> Vec<usize> {
        let mut split = FlushSplit::new(ranges.iter(), keys.len());
        keys.iter()
            .enumerate()
            .filter(|(_, key)| split.starts_table(key))
            .map(|(i, _)| i)
            .collect()
    }

    /// `n` keys of one stream: the byte `b'k'`, then `first..first + n` big-endian.
    fn keys(first: u32, n: u32) -> Vec<Vec<u8>> {
        (first..first + n)
            .map(|i| [b"k".as_slice(), &i.to_be_bytes()].concat())
            .collect()
    }

    fn key(i: u32) -> Vec<u8> {
        keys(i, 1).remove(0)
    }

    #[test]
    fn splits_after_late_keys_and_before_the_tail() {
        let keys = keys(0, 160);

        // Keys 0..=4 are not above the tables' largest key (4); the tail is the last
        // 160 / 16 = 10.
        assert_eq!(starts(&[range(&key(0), &key(4))], &keys), vec![5, 150]);
        // Nothing in the tree yet: only the tail.
        assert_eq!(starts(&[], &keys), vec![150]);
        // Every key above the tables: no table of late keys.
        assert_eq!(starts(&[range(b"a", b"a")], &keys), vec![150]);
        assert_eq!(starts(&[range(b"k", b"k")], &keys), vec![150]);
    }

    #[test]
    fn a_flush_entirely_below_the_boundary_still_has_its_tail() {
        assert_eq!(starts(&[range(&key(0), &key(1_000))], &keys(0, 32)), vec![30]);
    }

    #[test]
    fn a_small_flush_is_one_table() {
        // 15 / 16 = 0: no tail; the late-key split still applies.
        assert_eq!(starts(&[], &keys(0, 15)), Vec::<usize>::new());
        assert_eq!(starts(&[range(&key(0), &key(2))], &keys(0, 15)), vec![3]);
    }

    #[test]
    fn each_first_byte_is_a_stream_of_its_own() {
        // Keys of the ordered stream ('k'), then four of another form after all of them ('t').
        let mut flush = keys(100, 60);
        flush.extend((0..4u8).map(|i| vec![b't', i]));

        // A table of the other form on disk does not make the whole flush late...
        let tables = [range(&key(0), &key(109)), range(&[b't', 0], &[b't', 9])];
        // ...only keys 100..=109; the 't' keys start a table of their own (and are all late
        // for the 't' table); the tail is the last 64 / 16 = 4 entries, the 't' keys.
        assert_eq!(starts(&tables, &flush), vec![10, 60]);
        // A table spanning both streams (never written with this) counts for neither.
        assert_eq!(starts(&[range(&key(0), &[b't', 9])], &flush), vec![60]);
    }
}
