//! Order-preserving byte keys and versioned value encoding for the embedded engine.
//!
//! Strings end with 0x00 (ids never contain control characters; the domain checks), numbers
//! are big-endian with the sign bit flipped, so byte order is the tables' clustering order.

use crate::StoreError;
use serde::{Serialize, de::DeserializeOwned};

/// Builds a key from parts.
#[derive(Default)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new() -> Self {
        Key(Vec::with_capacity(64))
    }
    /// A key appended to `buf` (a batch's buffer of keys and values); `done` gives it back.
    pub(crate) fn after(buf: Vec<u8>) -> Self {
        Key(buf)
    }
    pub(crate) fn s(mut self, v: &str) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        self
    }
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&((v as u32) ^ 0x8000_0000).to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&((v as u64) ^ 0x8000_0000_0000_0000).to_be_bytes());
        self
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
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
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (head, tail) = self.0.split_first_chunk::<4>()?;
        self.0 = tail;
        Some(u32::from_be_bytes(*head))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.u32().map(|v| (v ^ 0x8000_0000) as i32)
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let (head, tail) = self.0.split_first_chunk::<8>()?;
        self.0 = tail;
        Some((u64::from_be_bytes(*head) ^ 0x8000_0000_0000_0000) as i64)
    }
}

/// Format version of stored values; a new layout gets a new number and a migration.
const VALUE_VERSION: u8 = 1;

/// `v` as a stored value, in a buffer of its own.
pub(crate) fn encode<T: Serialize>(table: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    // Room for most rows at once: growing the Vec byte run by byte run showed up in profiles.
    let mut out = Vec::with_capacity(256);
    encode_into(table, v, &mut out)?;
    Ok(out)
}

/// Appends `v` as a stored value to `out`; on failure `out` is left as it was.
pub(crate) fn encode_into<T: Serialize>(table: &'static str, v: &T, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let start = out.len();
    out.push(VALUE_VERSION);
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

pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt { table, detail: e.to_string() })
        }
        Some((v, _)) => Err(StoreError::Corrupt { table, detail: format!("unknown value version {v}") }),
        None => Err(StoreError::Corrupt { table, detail: "empty value".into() }),
    }
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
}
