//! How amounts are written to the store: mantissa and scale as varints, not text.
//!
//! `rust_decimal` serializes as a string everywhere by default: formatting and parsing that
//! text was ~7 % of a batch commit's instructions, and "1234.56" took 8 bytes where
//! (scale 2, mantissa 123456) takes 4. Serializers that are human readable (JSON) still get
//! the string, so only binary formats (postcard, the store's) change. Exact either way: a
//! `Decimal` is its 96-bit mantissa and its scale.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "crate::stored_decimal")]`.
pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        Serialize::serialize(d, s)
    } else {
        // A scale is at most 28.
        (d.scale() as u8, d.mantissa()).serialize(s)
    }
}

/// `#[serde(with = "crate::stored_decimal")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    if d.is_human_readable() {
        <Decimal as Deserialize>::deserialize(d)
    } else {
        let (scale, mantissa) = <(u8, i128)>::deserialize(d)?;
        Decimal::try_from_i128_with_scale(mantissa, u32::from(scale)).map_err(D::Error::custom)
    }
}

/// A bare amount as a stored value (the per-month paid rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount(#[serde(with = "crate::stored_decimal")] pub Decimal);

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "crate::stored_decimal")]
        amount: Decimal,
    }

    #[test]
    fn exact_and_compact_in_binary_text_in_json() {
        for text in ["0", "1234.56", "-0.001", "79228162514264337593543950335", "-7.9228162514264337593543950335", "1.00", "0.0000000000000000000000000001"] {
            let row = Row { amount: Decimal::from_str(text).expect("decimal") };
            let bytes = postcard::to_stdvec(&row).expect("encode");
            let back: Row = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, row);
            // Trailing zeros are kept: 1.00 stays 1.00.
            assert_eq!(back.amount.to_string(), text);
            let json = serde_json::to_string(&row).expect("json");
            assert_eq!(json, format!("{{\"amount\":\"{text}\"}}"));
            assert_eq!(serde_json::from_str::<Row>(&json).expect("json back"), row);
        }
        assert_eq!(postcard::to_stdvec(&Row { amount: Decimal::from_str("1234.56").expect("d") }).expect("encode").len(), 4);
        // A scale beyond 28 is refused, not misread.
        let bad = postcard::to_stdvec(&(29u8, 1i128)).expect("encode");
        assert!(postcard::from_bytes::<Row>(&bad).is_err());
    }
}
