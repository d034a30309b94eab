//! The determinism check: the same seed, run twice, must give the same trace hash.

use std::fmt;

/// Two runs of one seed disagreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nondeterminism {
    pub seed: u64,
    pub first_hash: u64,
    pub second_hash: u64,
}

impl fmt::Display for Nondeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} is not deterministic: the first run's trace hash is {:016x}, the second's {:016x}",
            self.seed, self.first_hash, self.second_hash
        )
    }
}

impl std::error::Error for Nondeterminism {}

/// Runs `run(seed)` twice (it builds and runs a whole simulation and returns its trace hash) and
/// compares the hashes. Both runs happen in this process, one after the other, so per-process
/// sources of chance (hash-map seeds, allocation addresses) differ between them and show up.
pub fn check_determinism(seed: u64, mut run: impl FnMut(u64) -> u64) -> Result<u64, Nondeterminism> {
    let first_hash = run(seed);
    let second_hash = run(seed);
    if first_hash == second_hash {
        Ok(first_hash)
    } else {
        Err(Nondeterminism { seed, first_hash, second_hash })
    }
}
