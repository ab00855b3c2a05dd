//! Support for fieldsync's cross-crate scenarios (`scenarios/`): helpers
//! that start processes and make test data. Never used by the product.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A small random number generator for fault timing. Seeded from the OS
/// per run; the seed is printed by the tests that use it, so a failure can
/// be replayed with `FIELDSYNC_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_random() -> Self {
        let seed = std::env::var("FIELDSYNC_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        println!("random seed: {seed} (replay with FIELDSYNC_SEED={seed})");
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
