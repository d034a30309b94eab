//! Exact integer emulation of the few IEEE-754 `float64` operations upstream uses in decisions.
//!
//! Upstream computes some decisions in `float64` (the HPA usage ratio, `math.Log2` of a duration
//! in the deletion ranking). A basic IEEE-754 operation returns the exact result rounded to the
//! nearest double, ties to even; these helpers compute that rounded value with integers, so our
//! decisions equal upstream's bit for bit without a float ever entering state or ordering.

/// A positive double as `significand * 2^exponent`, with `2^52 <= significand < 2^53`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct F64Value {
    pub(crate) significand: u64,
    pub(crate) exponent: i32,
}

const SIGNIFICAND_BITS: u32 = 53;

fn bit_length(x: u128) -> u32 {
    128 - x.leading_zeros()
}

/// The double nearest to `num / den` (ties to even), as IEEE-754 division of two exactly
/// representable operands gives it. `None` when the quotient is zero or an operand is zero or too
/// large for the exact computation (more than 74 bits; callers pass at most 84-bit numerators
/// with denominator 1, or 32-bit operands).
pub(crate) fn round_quotient(num: u128, den: u128) -> Option<F64Value> {
    if num == 0 || den == 0 {
        return None;
    }
    let (bits_num, bits_den) = (bit_length(num), bit_length(den));
    if bits_den > 74 || bits_num > 100 {
        return None;
    }
    // Choose the shift s so that num * 2^s / den lies in [2^52, 2^54), then correct by one.
    let mut shift = i64::from(SIGNIFICAND_BITS) - i64::from(bits_num) + i64::from(bits_den);
    for _ in 0..2 {
        let (n, d) = shifted(num, den, shift)?;
        let quotient = n / d;
        if quotient >= 1u128 << SIGNIFICAND_BITS {
            shift -= 1;
            continue;
        }
        let remainder = n % d;
        let mut significand = quotient;
        let twice = remainder * 2;
        if twice > d || (twice == d && significand % 2 == 1) {
            significand += 1;
        }
        if significand == 1u128 << SIGNIFICAND_BITS {
            significand >>= 1;
            shift -= 1;
        }
        let exponent = i32::try_from(-shift).ok()?;
        return Some(F64Value { significand: u64::try_from(significand).ok()?, exponent });
    }
    None
}

fn shifted(num: u128, den: u128, shift: i64) -> Option<(u128, u128)> {
    if shift >= 0 {
        let s = u32::try_from(shift).ok()?;
        if bit_length(num) + s > 127 {
            return None;
        }
        Some((num << s, den))
    } else {
        let s = u32::try_from(-shift).ok()?;
        if bit_length(den) + s > 127 {
            return None;
        }
        Some((num, den << s))
    }
}

/// `math.Ceil` of a positive double, as an integer.
pub(crate) fn ceil(value: F64Value) -> i128 {
    let significand = i128::from(value.significand);
    if value.exponent >= 0 {
        // Values here are below 2^84 (a 53-bit significand times a 31-bit count).
        let e = value.exponent.min(70).unsigned_abs();
        significand << e
    } else {
        let k = value.exponent.unsigned_abs();
        if k >= SIGNIFICAND_BITS {
            // The value is below 1 and positive.
            1
        } else {
            (significand + (1i128 << k) - 1) >> k
        }
    }
}

/// `int64(math.Log2(float64(d)))` for `d > 0`: the floor of log2 of `d` rounded to a double.
///
/// Go's `math.Log2` is exact at powers of two; away from them its result can round up to the next
/// integer only for a value within a few units in the last place below a power of two. Converting
/// `d` to a double first (as upstream does) already rounds such values up to the power of two when
/// `d >= 2^53`; for `d < 2^47` ns (about 39 hours) the result is exact; between the two a duration
/// within roughly 2^-48 relative of a power of two could differ from Go's. That sliver is accepted.
pub(crate) fn floor_log2_as_f64(d: u64) -> i64 {
    match round_quotient(u128::from(d), 1) {
        Some(v) => i64::from(v.exponent) + i64::from(SIGNIFICAND_BITS) - 1,
        None => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_f64(v: F64Value) -> f64 {
        // Tests only: compare the emulation with the hardware.
        (v.significand as f64) * 2f64.powi(v.exponent)
    }

    #[test]
    fn quotients_match_hardware_division() {
        let samples = [1u32, 2, 3, 7, 9, 10, 11, 33, 99, 100, 101, 110, 333, 1000, 65_537, 2_147_483_647];
        for &a in &samples {
            for &b in &samples {
                let v = round_quotient(u128::from(a), u128::from(b)).expect("nonzero");
                assert_eq!(to_f64(v), f64::from(a) / f64::from(b), "{a}/{b}");
            }
        }
    }

    #[test]
    fn log2_matches_for_small_durations() {
        for d in [1u64, 2, 3, 4, 1023, 1024, 1025, 999_999_999, 1_000_000_000, 1 << 40] {
            assert_eq!(floor_log2_as_f64(d), (d as f64).log2() as i64, "{d}");
        }
    }
}
