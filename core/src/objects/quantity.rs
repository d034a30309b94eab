//! Kubernetes resource quantities ("100m", "0.5", "128Mi", "1G", "1e3"), parsed once into integers.
//!
//! The simulation compares and sums resources on every scheduling decision, so it keeps them as
//! integers (millicores and bytes) rather than as decimal strings or floats: integer arithmetic is
//! exact and identical on every platform. Parsing follows `k8s.io/apimachinery/pkg/api/resource`:
//! a signed decimal number followed by an optional binary-SI suffix (`Ki`..`Ei`), decimal-SI suffix
//! (`n`, `u`, `m`, `k`, `M`..`E`) or decimal exponent (`e3`, `E-2`). Like `Quantity.MilliValue()`
//! and `Quantity.Value()`, a fraction below the target unit rounds up (`0.0001` CPU is 1 millicore).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError {
    /// The text that failed to parse.
    pub text: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid quantity {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for QuantityError {}

/// Longest accepted quantity text; a limit keeps the arithmetic below in u128 range and bounds work.
const QUANTITY_TEXT_LENGTH_MAX: usize = 64;

/// Parses a quantity and returns it in units of `1 / per_unit` (1000 for millicores, 1 for bytes),
/// rounded up. Negative quantities are rejected: no simulated resource can be negative.
pub fn parse_quantity_scaled(text: &str, per_unit: u64) -> Result<u64, QuantityError> {
    let error = |reason| QuantityError { text: text.to_string(), reason };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(error("empty quantity"));
    }
    if trimmed.len() > QUANTITY_TEXT_LENGTH_MAX {
        return Err(error("quantity text too long"));
    }
    let unsigned = match trimmed.as_bytes()[0] {
        b'-' => return Err(error("must not be negative")),
        b'+' => &trimmed[1..],
        _ => trimmed,
    };
    let number_length = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_length);
    let (integer_digits, fraction_digits) = match number.split_once('.') {
        Some((integer, fraction)) => (integer, fraction),
        None => (number, ""),
    };
    if integer_digits.is_empty() && fraction_digits.is_empty() {
        return Err(error("expected a number such as 100m, 0.5, 128Mi or 1e3"));
    }
    if fraction_digits.contains('.') {
        return Err(error("more than one decimal point"));
    }
    // The mantissa as an integer and a power of ten: "1.25" is 125 x 10^-2.
    let mut mantissa: u128 = 0;
    let mut significant_digits = 0usize;
    for digit in integer_digits.bytes().chain(fraction_digits.bytes()) {
        if mantissa == 0 && digit == b'0' {
            continue;
        }
        significant_digits += 1;
        if significant_digits > 30 {
            return Err(error("too many significant digits"));
        }
        mantissa = mantissa * 10 + u128::from(digit - b'0');
    }
    let mut exponent_ten: i64 = -(fraction_digits.len() as i64);
    let mut exponent_two: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => exponent_two = 10,
        "Mi" => exponent_two = 20,
        "Gi" => exponent_two = 30,
        "Ti" => exponent_two = 40,
        "Pi" => exponent_two = 50,
        "Ei" => exponent_two = 60,
        "n" => exponent_ten -= 9,
        "u" => exponent_ten -= 6,
        "m" => exponent_ten -= 3,
        "k" => exponent_ten += 3,
        "M" => exponent_ten += 6,
        "G" => exponent_ten += 9,
        "T" => exponent_ten += 12,
        "P" => exponent_ten += 15,
        "E" => exponent_ten += 18,
        _ => {
            let exponent_text = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E')).ok_or_else(|| {
                error("unknown suffix; expected one of Ki Mi Gi Ti Pi Ei n u m k M G T P E or an exponent like e3")
            })?;
            let exponent_digits =
                exponent_text.strip_prefix('-').or_else(|| exponent_text.strip_prefix('+')).unwrap_or(exponent_text);
            if exponent_digits.is_empty()
                || exponent_digits.len() > 3
                || !exponent_digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(error("malformed exponent"));
            }
            let exponent: i64 = exponent_text.parse().map_err(|_| error("malformed exponent"))?;
            exponent_ten += exponent;
        }
    }
    let too_large = || error("too large");
    let mut scaled = mantissa
        .checked_mul(u128::from(per_unit))
        .and_then(|v| v.checked_mul(1u128 << exponent_two))
        .ok_or_else(too_large)?;
    if scaled == 0 {
        return Ok(0);
    }
    if exponent_ten >= 0 {
        for _ in 0..exponent_ten {
            scaled = scaled.checked_mul(10).ok_or_else(too_large)?;
        }
    } else {
        for _ in 0..exponent_ten.unsigned_abs() {
            // Round up at the end: anything left below one unit still counts as one unit.
            if scaled == 0 {
                break;
            }
            scaled = scaled.div_ceil(10);
        }
    }
    u64::try_from(scaled).ok().filter(|v| *v <= i64::MAX as u64).ok_or_else(too_large)
}

/// A CPU amount in millicores: "100m" is 100, "0.5" and "500m" are 500, "2" is 2000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millicores(pub u64);

impl Millicores {
    /// Parses a Kubernetes CPU quantity, rounding a fraction of a millicore up.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        parse_quantity_scaled(text, 1000).map(Millicores)
    }
}

/// An amount of memory (or any countable resource) in bytes: "128Mi" is 134217728, "1G" is 10^9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses a Kubernetes memory quantity, rounding a fraction of a byte up.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        parse_quantity_scaled(text, 1).map(Bytes)
    }
}

impl Serialize for Millicores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}m", self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

/// Accepts a quantity as a YAML string or number (`cpu: 1`, `cpu: 0.5`, `memory: "128Mi"`).
struct QuantityVisitor {
    per_unit: u64,
}

impl Visitor<'_> for QuantityVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as 100m, 0.5, 128Mi or 1G")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_quantity_scaled(text, self.per_unit).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
        // Rust prints the shortest text that reads back as the same f64, so 0.1 stays "0.1".
        if !value.is_finite() {
            return Err(E::custom("a quantity must be a finite number"));
        }
        self.visit_str(&format!("{value}"))
    }
}

impl<'de> Deserialize<'de> for Millicores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor { per_unit: 1000 }).map(Millicores)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor { per_unit: 1 }).map(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_millicores() {
        let cases = [
            ("100m", 100),
            ("0.5", 500),
            ("1", 1000),
            ("2.25", 2250),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("0.0001", 1),
            ("250000u", 250),
            ("1k", 1_000_000),
            ("+3", 3000),
            ("0", 0),
            (".5", 500),
        ];
        for (text, millicores) in cases {
            assert_eq!(Millicores::parse(text), Ok(Millicores(millicores)), "{text}");
        }
    }

    #[test]
    fn memory_quantities_become_bytes() {
        let cases = [
            ("128Mi", 134_217_728),
            ("1Gi", 1_073_741_824),
            ("1G", 1_000_000_000),
            ("1e3", 1000),
            ("1.5Ki", 1536),
            ("0.5", 1),
            ("64M", 64_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(Bytes::parse(text), Ok(Bytes(bytes)), "{text}");
        }
        assert!(Bytes::parse("8Ei").is_err(), "2^63 exceeds the Kubernetes maximum");
        assert_eq!(Bytes::parse("7Ei"), Ok(Bytes(7 << 60)));
    }

    #[test]
    fn bad_quantities_are_errors() {
        for text in ["", "abc", "1.2.3", "10Mb", "-1", "1e", "1e9999", "m", "1 Gi", "1ee3", "99999Ei"] {
            assert!(Bytes::parse(text).is_err(), "{text:?} should be rejected");
        }
        assert_eq!(
            Millicores::parse("10x").unwrap_err().to_string(),
            "invalid quantity \"10x\": unknown suffix; expected one of Ki Mi Gi Ti Pi Ei n u m k M G T P E or an exponent like e3"
        );
    }
}
