//! Durations in files as `<integer><unit>` strings: `250ns`, `10us`, `500ms`, `30s`, `5m`, `2h`.
//!
//! Integers only, so a value written and read back is exactly the same number of nanoseconds.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

const UNITS: [(&str, u64); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Formats with the largest unit that represents the value exactly.
pub fn format(span: Duration) -> String {
    let nanos = crate::time::duration_nanos(span);
    if nanos == 0 {
        return "0s".to_string();
    }
    for (unit, scale) in UNITS {
        if nanos.is_multiple_of(scale) {
            return format!("{}{unit}", nanos / scale);
        }
    }
    unreachable!("every integer is a whole number of nanoseconds")
}

/// Parses `<integer><unit>`; the error says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let expected = "expected a duration such as 250ns, 10us, 500ms, 30s, 5m or 2h";
    if digits.is_empty() {
        return Err(format!("invalid duration {text:?}: {expected}"));
    }
    let value: u64 = digits.parse().map_err(|_| format!("invalid duration {text:?}: number too large"))?;
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| format!("invalid duration {text:?}: unknown unit {unit:?}; {expected}"))?;
    let nanos = value.checked_mul(scale).ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    Ok(Duration::from_nanos(nanos))
}

pub fn serialize<S: Serializer>(span: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*span))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for `Option<Duration>`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(span: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match span {
            Some(span) => serializer.serialize_some(&super::format(*span)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        for nanos in [0, 1, 999, 1_000, 1_500_000, 30_000_000_000, 7_200_000_000_000, 1_000_000_001] {
            let span = Duration::from_nanos(nanos);
            assert_eq!(parse(&format(span)), Ok(span), "{nanos}");
        }
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn rejects_bad_text_with_a_reason() {
        assert!(parse("").unwrap_err().contains("expected a duration"));
        assert!(parse("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("1.5s").unwrap_err().contains("unknown unit"));
        assert!(parse("99999999999999999999s").unwrap_err().contains("too large"));
    }
}
