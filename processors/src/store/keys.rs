//! Order-preserving byte keys and versioned value encoding for the embedded engine.
//!
//! Strings end with 0x00 (ids never contain control characters; the domain checks), numbers
//! are big-endian with the sign bit flipped, so byte order is the tables' clustering order.
//! Tenant and command ids are written compactly where they have the forms billstream makes
//! (see [`Key::id`]).

use crate::StoreError;
use serde::{Serialize, de::DeserializeOwned};
use std::borrow::Cow;

/// The forms of [`Key::id`], by their tag byte. The tag fixes what follows (16 bytes, or text
/// up to a 0x00), so no id's bytes are a prefix of another's and a key's later parts stay
/// where a reader expects them.
const ID_UUID: u8 = 1;
const ID_TENANT: u8 = 2;
const ID_TEXT: u8 = 3;

/// What precedes the 32 hex digits of a tenant id billstream made (`t_` and a UUID's simple form).
const TENANT_PREFIX: &str = "t_";

/// Each byte's value as a lower-case hex digit, or 0xFF: a table, not a `match`, because a
/// key holds an id or two and every row of every batch has keys (the committer's share).
const NIBBLES: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes lower-case hex digits (`src`, twice as long as `dst`) into `dst`; false if any is
/// not one (upper case neither, so that two different ids never share an encoding).
fn unhex_into(src: &[u8], dst: &mut [u8]) -> bool {
    let mut bad = 0;
    for (o, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
        let (hi, lo) = (NIBBLES[pair[0] as usize], NIBBLES[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | lo;
    }
    bad < 16 && src.len() == 2 * dst.len()
}

/// The 16 bytes of 32 lower-case hex digits; `None` for anything else.
fn hex32(s: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    (s.len() == 32 && unhex_into(s, &mut out)).then_some(out)
}

/// The 16 bytes of a UUID in its canonical text form (lower case, hyphenated, as `Uuid`
/// prints it and as the gateway makes command ids); `None` for any other text.
fn canonical_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 36 || s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    // `&`, not `&&`: all five groups are decoded either way, without a branch between them.
    let ok = unhex_into(&s[..8], &mut out[..4])
        & unhex_into(&s[9..13], &mut out[4..6])
        & unhex_into(&s[14..18], &mut out[6..8])
        & unhex_into(&s[19..23], &mut out[8..10])
        & unhex_into(&s[24..], &mut out[10..]);
    ok.then_some(out)
}

/// The ids a batch's keys encoded last, with their encodings: a command's tenant id leads
/// most of its rows' keys and its id is in two, so most ids of a batch repeat the one or the
/// other id before them. Decoding their hex again and again was 5.7 % of the committer
/// thread's samples (`perf record` during `billstream-load steady`); 1.2 % with this.
#[derive(Default)]
pub(crate) struct RecentIds {
    slots: [Option<(String, [u8; 17])>; 2],
    /// The slot the next new id replaces.
    next: usize,
}

impl RecentIds {
    fn get(&self, id: &str) -> Option<&[u8; 17]> {
        self.slots.iter().flatten().find(|(text, _)| text == id).map(|(_, encoded)| encoded)
    }

    fn put(&mut self, id: &str, encoded: [u8; 17]) {
        let slot = self.slots[self.next].get_or_insert_with(|| (String::with_capacity(36), encoded));
        slot.0.clear();
        slot.0.push_str(id);
        slot.1 = encoded;
        self.next = (self.next + 1) % self.slots.len();
    }
}

/// Builds a key from parts.
#[derive(Default)]
pub(crate) struct Key {
    bytes: Vec<u8>,
    /// Where a batch's keys remember ids (see [`Key::after`]); none for a single key.
    recent: Option<Box<RecentIds>>,
}

impl Key {
    pub(crate) fn new() -> Self {
        Key { bytes: Vec::with_capacity(64), recent: None }
    }
    /// A key appended to `buf` (a batch's buffer of keys and values), looking its ids up in
    /// `recent` first; `done_with` gives both back.
    pub(crate) fn after(buf: Vec<u8>, recent: Option<Box<RecentIds>>) -> Self {
        Key { bytes: buf, recent }
    }
    pub(crate) fn s(mut self, v: &str) -> Self {
        self.bytes.extend_from_slice(v.as_bytes());
        self.bytes.push(0);
        self
    }
    /// A tenant or command id. A UUID in canonical text (the gateway's command ids, v7 or
    /// derived v5) and a tenant id as billstream makes them (`t_` and 32 hex digits) are
    /// written as a tag and their 16 bytes instead of 36 or 34 characters: these ids are in
    /// every row, and rows of random keys (derived command ids, invoices by tenant) are what
    /// compaction rewrites again and again as the store grows. Anything else is written as a
    /// tag and the text. Within a form, byte order is the text's order (lower-case hex sorts
    /// like its nibbles), so time-ordered ids stay in time order; across forms it is by tag.
    pub(crate) fn id(mut self, v: &str) -> Self {
        if let Some(encoded) = self.recent.as_deref().and_then(|r| r.get(v)) {
            self.bytes.extend_from_slice(encoded);
            return self;
        }
        let (tag, b) = if let Some(b) = canonical_uuid(v) {
            (ID_UUID, b)
        } else if let Some(b) = v.strip_prefix(TENANT_PREFIX).and_then(|h| hex32(h.as_bytes())) {
            (ID_TENANT, b)
        } else {
            self.bytes.push(ID_TEXT);
            return self.s(v);
        };
        let mut encoded = [tag; 17];
        encoded[1..].copy_from_slice(&b);
        self.bytes.extend_from_slice(&encoded);
        if let Some(recent) = self.recent.as_deref_mut() {
            recent.put(v, encoded);
        }
        self
    }
    /// Bytes as they are: parts of another key (see [`KeyReader::id_bytes`]).
    pub(crate) fn raw(mut self, v: &[u8]) -> Self {
        self.bytes.extend_from_slice(v);
        self
    }
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.bytes.push(v);
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.bytes.extend_from_slice(&((v as u32) ^ 0x8000_0000).to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.bytes.extend_from_slice(&((v as u64) ^ 0x8000_0000_0000_0000).to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.bytes
    }
    /// The buffer and the ids remembered, of a key made by [`Key::after`].
    pub(crate) fn done_with(self) -> (Vec<u8>, Option<Box<RecentIds>>) {
        (self.bytes, self.recent)
    }
}

/// Reads parts back from a key.
pub(crate) struct KeyReader<'a>(pub(crate) &'a [u8]);

impl<'a> KeyReader<'a> {
    pub(crate) fn s(&mut self) -> Option<&'a str> {
        let end = self.0.iter().position(|&b| b == 0)?;
        let (head, tail) = self.0.split_at(end);
        self.0 = &tail[1..];
        std::str::from_utf8(head).ok()
    }
    /// An id written by [`Key::id`], as the text it was.
    pub(crate) fn id(&mut self) -> Option<Cow<'a, str>> {
        let (&tag, rest) = self.0.split_first()?;
        self.0 = rest;
        let bytes = |r: &mut Self| -> Option<[u8; 16]> {
            let (head, tail) = r.0.split_first_chunk::<16>()?;
            r.0 = tail;
            Some(*head)
        };
        match tag {
            ID_UUID => Some(Cow::Owned(uuid::Uuid::from_bytes(bytes(self)?).hyphenated().to_string())),
            ID_TENANT => Some(Cow::Owned(format!("{TENANT_PREFIX}{}", uuid::Uuid::from_bytes(bytes(self)?).simple()))),
            ID_TEXT => self.s().map(Cow::Borrowed),
            _ => None,
        }
    }
    /// An id written by [`Key::id`], as its bytes (tag included), undecoded.
    pub(crate) fn id_bytes(&mut self) -> Option<&'a [u8]> {
        let len = match *self.0.first()? {
            ID_UUID | ID_TENANT => 17,
            ID_TEXT => 2 + self.0[1..].iter().position(|&b| b == 0)?,
            _ => return None,
        };
        let (head, tail) = self.0.split_at_checked(len)?;
        self.0 = tail;
        Some(head)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (head, tail) = self.0.split_first_chunk::<4>()?;
        self.0 = tail;
        Some(u32::from_be_bytes(*head))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| (v ^ 0x8000_0000) as i32)
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| (v ^ 0x8000_0000_0000_0000) as i64)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        let (head, tail) = self.0.split_first_chunk::<8>()?;
        self.0 = tail;
        Some(u64::from_be_bytes(*head))
    }
}

/// Format version of stored values, their first byte; a new layout of a table's values gets
/// a new number, and the table's reader reads every number its store can hold (see
/// [`split_version`]).
pub(crate) const VALUE_VERSION: u8 = 1;

/// `v` as a stored value, in a buffer of its own.
pub(crate) fn encode<T: Serialize>(table: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    // Room for most rows at once: growing the Vec byte run by byte run showed up in profiles.
    let mut out = Vec::with_capacity(256);
    encode_into(table, VALUE_VERSION, v, &mut out)?;
    Ok(out)
}

/// Appends `v` as a stored value of layout `version` to `out`; on failure `out` is left as
/// it was.
pub(crate) fn encode_into<T: Serialize>(table: &'static str, version: u8, v: &T, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let start = out.len();
    out.push(version);
    postcard::serialize_with_flavor(v, Append(out)).map_err(|e| {
        out.truncate(start);
        StoreError::Engine(format!("encoding a row of {table}: {e}"))
    })
}

/// postcard output appended to a borrowed buffer. `postcard::to_io` into `&mut Vec` does the
/// same through `io::Write`, measurably slower (callgrind, store commit of 1,000 invoices:
/// 19.34M instructions against 18.40M with this).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A stored value of layout [`VALUE_VERSION`].
pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match split_version(table, bytes)? {
        (VALUE_VERSION, body) => decode_body(table, body),
        (v, _) => Err(unknown_version(table, v)),
    }
}

/// A stored value's layout version and the rest of it, for a table whose values have had
/// more than one layout.
pub(crate) fn split_version<'a>(table: &'static str, bytes: &'a [u8]) -> Result<(u8, &'a [u8]), StoreError> {
    bytes.split_first().map(|(&v, body)| (v, body)).ok_or_else(|| StoreError::Corrupt { table, detail: "empty value".into() })
}

/// The body of a stored value (after its version byte).
pub(crate) fn decode_body<T: DeserializeOwned>(table: &'static str, body: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(body).map_err(|e| StoreError::Corrupt { table, detail: e.to_string() })
}

/// The error for a value whose layout version its table's reader does not know.
pub(crate) fn unknown_version(table: &'static str, version: u8) -> StoreError {
    StoreError::Corrupt { table, detail: format!("unknown value version {version}") }
}

/// Lower-case hex, for opaque page tokens.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_their_parts() {
        let a = Key::new().s("t").i32(-5).u32(2).i64(7).done();
        let b = Key::new().s("t").i32(3).u32(1).i64(-1).done();
        let c = Key::new().s("t").i32(3).u32(2).i64(-9).done();
        let d = Key::new().s("t").i32(3).u32(2).i64(1).done();
        assert!(a < b && b < c && c < d);
        let mut r = KeyReader(&a);
        assert_eq!((r.s(), r.i32(), r.u32(), r.i64()), (Some("t"), Some(-5), Some(2), Some(7)));
        assert_eq!(unhex(&hex(&a)), Some(a));
    }

    const UUIDS: [&str; 3] =
        ["0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "f0000000-0000-5000-8000-00000000000a"];
    const TENANTS: [&str; 2] = ["t_65267f3a5bec4450ba1d9660bd3d0e7d", "t_8939c577eb96471d8f056df76c6e5a51"];
    /// Ids that must keep their text: near misses of the compact forms among them.
    const TEXTS: [&str; 10] = [
        "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g",
        "0193a1b2-c3d4-7e5f-8a9b0-c1d2e3f4a5b",
        "t_65267f3a5bec4450ba1d9660bd3d0e7g",
        "0193a1b2c3d47e5f8a9b0c1d2e3f4a5b",
        "{0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
        "t_65267F3A5BEC4450BA1D9660BD3D0E7D",
        "t_inflight",
        "k-ghost",
    ];

    #[test]
    fn ids_read_back_as_written_and_compact_forms_are_short() {
        for id in UUIDS.iter().chain(&TENANTS).chain(&TEXTS) {
            let key = Key::new().id(id).i64(-3).done();
            let mut r = KeyReader(&key);
            assert_eq!((r.id().as_deref(), r.i64()), (Some(*id), Some(-3)), "{id}");
            assert!(r.0.is_empty());
        }
        assert_eq!(Key::new().id(UUIDS[0]).done().len(), 17);
        assert_eq!(Key::new().id(TENANTS[0]).done().len(), 17);
        assert_eq!(Key::new().id(TEXTS[0]).done().len(), 38, "an upper-case UUID is another id: kept as text");
    }

    #[test]
    fn a_batch_encodes_ids_as_single_keys_do() {
        // Ids repeating, alternating and new, compact and text, as a batch's rows bring them.
        let ids = [TENANTS[0], UUIDS[0], TENANTS[0], UUIDS[1], TENANTS[1], TEXTS[3], TENANTS[0], UUIDS[0], TEXTS[8], UUIDS[2]];
        let (mut buf, mut recent) = (Vec::new(), Some(Box::default()));
        for a in ids {
            for b in ids {
                let start = buf.len();
                (buf, recent) = Key::after(buf, recent).id(a).i32(7).id(b).done_with();
                assert_eq!(buf[start..], Key::new().id(a).i32(7).id(b).done(), "{a} then {b}");
            }
        }
    }

    #[test]
    fn ids_keep_their_order_within_a_form_and_no_id_prefixes_another() {
        for ids in [&UUIDS[..], &TENANTS[..], &["a", "ab", "b"][..]] {
            let keys: Vec<_> = ids.iter().map(|id| Key::new().id(id).done()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        }
        let all: Vec<_> = UUIDS.iter().chain(&TENANTS).chain(&TEXTS).map(|id| Key::new().id(id).done()).collect();
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert!(i == j || !b.starts_with(a), "{i} prefixes {j}");
            }
        }
    }
}
