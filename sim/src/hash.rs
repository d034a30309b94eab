//! The trace hash: a fixed 64-bit fold, identical on every platform, run and Rust version.
//!
//! std's `DefaultHasher` is explicitly unspecified across releases, so it cannot pin a trace. This is
//! an FxHash-style fold (rotate, xor, multiply by a fixed odd constant) with murmur3's `fmix64`
//! finalizer. It is not a cryptographic hash; it only has to make different traces differ.

/// A streaming hasher with a fixed algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableHasher {
    state: u64,
}

const FOLD_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;
const INITIAL_STATE: u64 = 0xcbf2_9ce4_8422_2325;

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    pub const fn new() -> Self {
        StableHasher { state: INITIAL_STATE }
    }

    /// Folds one word into the state.
    #[inline]
    pub fn write_u64(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(FOLD_MULTIPLIER);
    }

    /// Folds bytes (little-endian words, then the length, so "ab"+"c" differs from "a"+"bc").
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
        self.write_u64(bytes.len() as u64);
    }

    pub fn write_str(&mut self, text: &str) {
        self.write_bytes(text.as_bytes());
    }

    /// The finalized hash; the state itself is unchanged, so folding can go on.
    pub fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// murmur3's 64-bit finalizer: spreads every input bit over the output.
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The stable hash of a string, for naming streams and buggify sites.
pub fn stable_hash_str(text: &str) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.write_str(text);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_values_never_change() {
        // These constants pin the algorithm: if they change, every recorded trace hash changes.
        // They were cross-checked against an independent implementation of the same fold.
        assert_eq!(stable_hash_str(""), 0x8c32_3f58_1a10_6ab4);
        assert_eq!(stable_hash_str("kubedst"), 0xf7cf_554e_e4ec_cafa);
    }

    #[test]
    fn split_points_matter() {
        let mut a = StableHasher::new();
        a.write_str("ab");
        a.write_str("c");
        let mut b = StableHasher::new();
        b.write_str("a");
        b.write_str("bc");
        assert_ne!(a.finish(), b.finish());
    }
}
