//! Reproducible random numbers: one ChaCha8 stream per (sweep seed, trial,
//! purpose). ChaCha8 output is fixed by its specification, and floats are
//! derived from raw `u64`s here rather than through `rand`'s distributions,
//! so a suggestion never changes under a dependency upgrade.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Purposes keep the streams of one trial independent of each other.
pub(crate) mod purpose {
    /// Sampling parameter `i` directly (random search, grid extras, TPE
    /// startup): `PARAM + i`.
    pub const PARAM: u64 = 0;
    /// TPE candidates for parameter `i`: `TPE + i`.
    pub const TPE: u64 = 1 << 32;
}

/// One deterministic random stream.
pub(crate) struct Stream(ChaCha8Rng);

impl Stream {
    /// The stream for `purpose` in trial `trial` of the sweep seeded `seed`.
    pub fn new(seed: u64, trial: u32, purpose: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&trial.to_le_bytes());
        key[12..20].copy_from_slice(&purpose.to_le_bytes());
        Stream(ChaCha8Rng::from_seed(key))
    }

    /// Uniform in `[0, 1)`, 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform index in `0..n` (`n` > 0; 0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for n far below 2^64.
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// SplitMix64's finaliser: a bijective, well-mixing `u64` hash.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Stream::new(7, 3, 1).below(1000)).collect();
        assert!(
            a.windows(2).all(|w| w[0] == w[1]),
            "same key, same first draw"
        );
        let mut s1 = Stream::new(7, 3, 1);
        let mut s2 = Stream::new(7, 4, 1);
        let x: Vec<f64> = (0..8).map(|_| s1.uniform()).collect();
        let y: Vec<f64> = (0..8).map(|_| s2.uniform()).collect();
        assert_ne!(x, y, "another trial gets another stream");
        assert!(x.iter().all(|v| (0.0..1.0).contains(v)));
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut s = Stream::new(1, 0, 0);
        let draws: Vec<f64> = (0..20_000).map(|_| s.normal()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
