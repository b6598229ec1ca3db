//! ISO 4217 currencies, their minor units, and the rounding rule for invoice lines.
//!
//! The rule, applied once per line and nowhere else:
//! `net = round(quantity × unit_price)`, `tax = round(net × tax_rate / 100)`,
//! where `round` rounds to the currency's minor units, half away from zero (commercial
//! rounding). Invoice subtotal, tax and total are plain sums of the rounded line values,
//! so the invoice always equals the sum of its lines to the cent.

use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;
use std::str::FromStr;

/// An ISO 4217 alphabetic currency code known to billstream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Active ISO 4217 codes. Every code has two minor units unless listed in
/// [`MINOR_UNIT_EXCEPTIONS`].
const CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK \
DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD \
IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD \
MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN \
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT \
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF \
YER ZAR ZMW ZWG";

/// Currencies whose minor units are not two.
/// Codes as byte arrays, compared as such (a slice comparison per entry was most of the
/// cost of rounding an amount once the rounding itself was made cheap).
const MINOR_UNIT_EXCEPTIONS: &[([u8; 3], u32)] = &[
    (*b"BIF", 0), (*b"CLP", 0), (*b"DJF", 0), (*b"GNF", 0), (*b"ISK", 0), (*b"JPY", 0), (*b"KMF", 0),
    (*b"KRW", 0), (*b"PYG", 0), (*b"RWF", 0), (*b"UGX", 0), (*b"UYI", 0), (*b"VND", 0), (*b"VUV", 0),
    (*b"XAF", 0), (*b"XOF", 0), (*b"XPF", 0),
    (*b"BHD", 3), (*b"IQD", 3), (*b"JOD", 3), (*b"KWD", 3), (*b"LYD", 3), (*b"OMR", 3), (*b"TND", 3),
    (*b"CLF", 4), (*b"UYW", 4),
];

/// Whether `code` is in [`CODES`] (sorted, three letters and a space each: binary search).
fn known(code: &str) -> bool {
    let codes = CODES.as_bytes();
    let n = codes.len().div_ceil(4);
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match codes[mid * 4..mid * 4 + 3].cmp(code.as_bytes()) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The largest number of minor units any currency has; amounts on the wire carry this scale.
pub const MAX_MINOR_UNITS: u32 = 4;

impl Currency {
    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Constructed only from ASCII codes in CODES.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in this currency's minor unit (2 for EUR, 0 for JPY).
    pub fn minor_units(&self) -> u32 {
        MINOR_UNIT_EXCEPTIONS
            .iter()
            .find(|(c, _)| *c == self.0)
            .map(|&(_, n)| n)
            .unwrap_or(2)
    }

    /// Rounds to this currency's minor units, half away from zero, and shows exactly that
    /// many decimal places ("21.20", "1000", "1.500").
    pub fn round(&self, amount: Decimal) -> Decimal {
        round_half_away(amount, self.minor_units())
    }

    /// Whether `amount` is already expressed in whole minor units (no sub-cent digits).
    pub fn is_whole_minor(&self, amount: Decimal) -> bool {
        amount.normalize().scale() <= self.minor_units()
    }
}

/// Why a string is not a currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an ISO 4217 currency code such as EUR or USD, got {0:?}")]
pub struct CurrencyParseError(pub String);

impl FromStr for Currency {
    type Err = CurrencyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) && known(s) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(CurrencyParseError(s.to_string()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The rounded amounts of one invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    /// quantity × unit price, rounded.
    pub net: Decimal,
    /// net × tax rate / 100, rounded.
    pub tax: Decimal,
}

/// Why a line's amounts cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line amount overflows: {0}")]
pub struct AmountOverflow(pub &'static str);

/// `amount` rounded to `dp` places, half away from zero, shown with exactly `dp` places: what
/// `round_dp_with_strategy(dp, MidpointAwayFromZero)` and `rescale(dp)` make, to the bit.
/// Money's mantissas fit in 64 bits, and there one division drops the digits that
/// rust_decimal's general rounding drops one at a time in 96-bit arithmetic (its rounding was
/// 2.5 % of the processor thread, and 3 % of the load harness's CPU, in generating commands).
fn round_half_away(amount: Decimal, dp: u32) -> Decimal {
    let scale = amount.scale();
    // Already within `dp` places (a price of 12.30 in euros): only padded with zeros.
    if scale <= dp
        && let Ok(m) = i64::try_from(amount.mantissa())
        && let Some(padded) = m.unsigned_abs().checked_mul(10u64.pow(dp - scale))
    {
        // `from_parts` makes a zero positive; `rescale` keeps a negative zero negative.
        let mut d = Decimal::from_parts(padded as u32, (padded >> 32) as u32, 0, false, dp);
        d.set_sign_negative(amount.is_sign_negative());
        return d;
    }
    if scale > dp
        && scale - dp <= 18
        && let Ok(m) = i64::try_from(amount.mantissa())
    {
        let p = 10u64.pow(scale - dp);
        let (magnitude, negative) = (m.unsigned_abs(), amount.is_sign_negative());
        let (q, r) = (magnitude / p, magnitude % p);
        // r < p <= 10^18: doubling it stays within u64.
        let q = if 2 * r >= p { q + 1 } else { q };
        return Decimal::from_parts(q as u32, (q >> 32) as u32, 0, negative, dp);
    }
    let mut r = amount.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(dp);
    r
}

/// `amount / 100`, exactly: the same digits two places further right, where the scale allows
/// it (rust_decimal's division does the general case, long division).
fn percent(amount: Decimal) -> Option<Decimal> {
    let mut shifted = amount;
    match shifted.set_scale(amount.scale() + 2) {
        Ok(()) => Some(shifted),
        Err(_) => amount.checked_div(Decimal::ONE_HUNDRED),
    }
}

/// Applies the module's rounding rule to one line. `tax_rate` is a percentage.
pub fn line_amounts(
    currency: Currency,
    quantity: Decimal,
    unit_price: Decimal,
    tax_rate: Decimal,
) -> Result<LineAmounts, AmountOverflow> {
    let net = quantity.checked_mul(unit_price).ok_or(AmountOverflow("quantity × unit_price"))?;
    let net = currency.round(net);
    let tax = net.checked_mul(tax_rate).and_then(percent).ok_or(AmountOverflow("net × tax_rate"))?;
    Ok(LineAmounts { net, tax: currency.round(tax) })
}

/// Appends `d` as its `Display` writes it ("12.30", "-0.005", "0"), without going through
/// `fmt`: rust_decimal's `Display` divides the 96-bit mantissa digit by digit and pads, a
/// quarter of the load harness's command generation and most of the audit rows' text.
pub fn push_decimal(out: &mut String, d: Decimal) {
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut m = d.mantissa().unsigned_abs();
    // Money fits in 64 bits: divide there, where it is cheap.
    while m > u128::from(u64::MAX) {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    let mut m = m as u64;
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let digits = &digits[at..];
    let scale = d.scale() as usize;
    if d.is_sign_negative() {
        out.push('-');
    }
    if scale == 0 {
        push_ascii(out, digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        push_ascii(out, whole);
        out.push('.');
        push_ascii(out, fraction);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        push_ascii(out, digits);
    }
}

fn push_ascii(out: &mut String, ascii_digits: &[u8]) {
    // Only b'0'..=b'9' reach here.
    out.push_str(std::str::from_utf8(ascii_digits).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal literal")
    }

    #[test]
    fn the_code_list_is_sorted_and_searchable() {
        let codes: Vec<&str> = CODES.split(' ').collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "CODES must stay sorted");
        assert!(codes.iter().all(|c| c.len() == 3 && known(c)));
        assert!(!known("AAA") && !known("ZZZ") && !known("EUS"));
    }

    #[test]
    fn parses_and_knows_minor_units() {
        let eur: Currency = "EUR".parse().expect("EUR");
        assert_eq!(eur.minor_units(), 2);
        assert_eq!("JPY".parse::<Currency>().map(|c| c.minor_units()), Ok(0));
        assert_eq!("KWD".parse::<Currency>().map(|c| c.minor_units()), Ok(3));
        assert!("eur".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
        assert!("EURO".parse::<Currency>().is_err());
    }

    #[test]
    fn push_decimal_writes_what_display_writes() {
        let mut cases = vec![Decimal::ZERO, -Decimal::ZERO, Decimal::MAX, Decimal::MIN, Decimal::new(0, 2), Decimal::new(-5, 3)];
        cases.extend(["12.30", "-0.005", "1000", "0.0000000000000000000000000001", "79228162514264337593543950335", "-1.5"].map(d));
        cases.extend(walk(20_000));
        let mut out = String::new();
        for c in cases {
            out.clear();
            push_decimal(&mut out, c);
            assert_eq!(out, c.to_string(), "{c:?}");
        }
    }

    /// Decimals of every width, sign and scale, drawn by a xorshift walk.
    fn walk(n: u32) -> impl Iterator<Item = Decimal> {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n).map(move |i| {
            let (lo, mid, hi) = (next() as u32, next() as u32, next() as u32);
            let width = i % 5;
            let lo = if width == 0 { lo % 1000 } else { lo };
            let mid = if width < 2 { 0 } else if width == 2 { mid % 1000 } else { mid };
            let hi = if width < 4 { 0 } else { hi };
            Decimal::from_parts(lo, mid, hi, next() % 2 == 0, next() as u32 % 29)
        })
    }

    #[test]
    fn the_fast_rounding_is_rust_decimals_to_the_bit() {
        let mut cases: Vec<Decimal> = walk(200_000).collect();
        // Midpoints, their neighbours and zeros of either sign, at the scales money meets.
        for m in [0i64, 5, 15, 25, 49, 50, 51, 99, 149, 150, 151, 995, 1005, 12_345, 999_999_999_999_999_999] {
            for scale in 0..=20 {
                cases.extend([Decimal::new(m, scale), Decimal::new(-m, scale)]);
            }
        }
        cases.extend([Decimal::MAX, Decimal::MIN, -Decimal::ZERO, Decimal::from_parts(0, 0, 0, true, 7)]);
        for c in cases {
            for dp in 0..=MAX_MINOR_UNITS {
                let mut want = c.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
                want.rescale(dp);
                let got = round_half_away(c, dp);
                assert_eq!(got.serialize(), want.serialize(), "{c:?} to {dp} places: {got} against {want}");
            }
        }
    }

    #[test]
    fn a_percent_is_the_quotient_by_100() {
        for c in walk(100_000).chain([Decimal::MAX, Decimal::MIN, Decimal::new(1, 27), Decimal::new(1, 28)]) {
            let (got, want) = (percent(c), c.checked_div(Decimal::ONE_HUNDRED));
            assert_eq!(got, want, "{c:?}");
            // Equal values round to the same bits, whatever their scale.
            if let (Some(g), Some(w)) = (got, want) {
                assert_eq!(round_half_away(g, 2).serialize(), round_half_away(w, 2).serialize(), "{c:?}");
            }
        }
    }

    #[test]
    fn rounds_each_line_half_away_from_zero() {
        let eur: Currency = "EUR".parse().expect("EUR");
        // 3 × 0.335 = 1.005 → 1.01; tax 19 % of 1.01 = 0.1919 → 0.19
        assert_eq!(
            line_amounts(eur, d("3"), d("0.335"), d("19")),
            Ok(LineAmounts { net: d("1.01"), tax: d("0.19") })
        );
        // 0.125 tax → 0.13 (not banker's 0.12)
        assert_eq!(line_amounts(eur, d("1"), d("1.25"), d("10")).map(|l| l.tax), Ok(d("0.13")));
        let jpy: Currency = "JPY".parse().expect("JPY");
        assert_eq!(line_amounts(jpy, d("1"), d("999.5"), d("10")).map(|l| (l.net, l.tax)), Ok((d("1000"), d("100"))));
        assert!(line_amounts(eur, Decimal::MAX, d("2"), d("0")).is_err());
    }
}
