//! Seeded randomness: one `u64` seed per run, one ChaCha8 stream per name.
//!
//! Each stream's key is derived from (seed, stream name) with a fixed hash, so adding a component
//! or a stream never reshuffles the draws of the others. Bounded draws use our own unbiased
//! algorithm (Lemire's multiply-and-reject) rather than a library distribution, so a dependency
//! update cannot change what a seed means.

use crate::hash::{fmix64, StableHasher};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A probability as an integer ratio `num / den`; floats stay out of anything that decides a run.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ratio {
    pub num: u32,
    pub den: u32,
}

impl Ratio {
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den`; a zero denominator is a bug in the caller, not user input (see [`Ratio::checked`]).
    pub const fn new(num: u32, den: u32) -> Ratio {
        assert!(den > 0, "Ratio denominator must be positive");
        Ratio { num, den }
    }

    /// `num / den` for values that come from a user: `None` unless `0 < den` and `num <= den`.
    pub fn checked(num: u32, den: u32) -> Option<Ratio> {
        (den > 0 && num <= den).then_some(Ratio { num, den })
    }

    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    /// Whether the ratio is a valid probability (a user-supplied ratio must be checked with this).
    pub fn is_probability(self) -> bool {
        self.den > 0 && self.num <= self.den
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A named, seeded random stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The stream `name` of the run with `seed`.
    pub fn for_stream(seed: u64, name: &str) -> SimRng {
        let mut hasher = StableHasher::new();
        hasher.write_u64(seed);
        hasher.write_str(name);
        // SplitMix64 expands the 64-bit key into ChaCha's 256-bit key.
        let mut state = hasher.finish();
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            chunk.copy_from_slice(&fmix64(state).to_le_bytes());
        }
        SimRng { inner: ChaCha8Rng::from_seed(key) }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform draw in `0..bound`; `bound` must be positive.
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "SimRng::below needs a positive bound");
        // Lemire's method: multiply into 128 bits and reject the few biased low products.
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform draw in `low..=high`.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        match (high - low).checked_add(1) {
            Some(width) => low + self.below(width),
            None => self.next_u64(),
        }
    }

    /// True with probability `ratio`. Certain outcomes draw nothing, so a disabled fault costs no
    /// randomness and does not shift later draws.
    #[inline]
    pub fn chance(&mut self, ratio: Ratio) -> bool {
        if ratio.num == 0 {
            return false;
        }
        if ratio.num >= ratio.den {
            return true;
        }
        self.below(u64::from(ratio.den)) < u64::from(ratio.num)
    }

    /// One element chosen uniformly, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len() as u64) as usize])
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let mut a = SimRng::for_stream(7, "network");
        let mut b = SimRng::for_stream(7, "network");
        let mut c = SimRng::for_stream(7, "faults");
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn below_stays_in_bounds_and_covers_them() {
        let mut rng = SimRng::for_stream(1, "t");
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn certain_chances_draw_nothing() {
        let mut a = SimRng::for_stream(3, "t");
        let mut b = SimRng::for_stream(3, "t");
        assert!(!a.chance(Ratio::ZERO));
        assert!(a.chance(Ratio::ONE));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn checked_rejects_non_probabilities() {
        assert!(Ratio::checked(1, 0).is_none());
        assert!(Ratio::checked(3, 2).is_none());
        assert_eq!(Ratio::checked(1, 2), Some(Ratio::new(1, 2)));
    }
}
