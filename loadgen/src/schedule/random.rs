//! Small, fixed pseudo-random functions, so a seed replays the same run on every version and platform.
//!
//! SplitMix64 (Steele, Lea & Flood, 2014) for hashing and streams, and a keyed Feistel permutation for
//! the mix: out of each block of `total_weight` consecutive request numbers, every slot is used once,
//! so weights hold exactly per block while the order within a block looks random. Nothing here knows
//! about scenarios.

/// One SplitMix64 output step: a good 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of two words.
pub fn hash2(a: u64, b: u64) -> u64 {
    mix64(mix64(a) ^ b.rotate_left(17))
}

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0.wrapping_sub(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Exponential with mean 1.
    pub fn next_exp(&mut self) -> f64 {
        -(1.0 - self.next_f64()).ln()
    }
}

/// The slot (in `0..total`) of request `number`: a seeded permutation of each block of `total`
/// consecutive numbers.
pub fn mix_slot(seed: u64, number: u64, total: u64) -> u64 {
    if total <= 1 {
        return 0;
    }
    let block = number / total;
    permute(number % total, total, hash2(seed, block))
}

/// A keyed bijection of `0..domain`: a balanced Feistel network on the smallest even number of bits
/// that covers the domain, cycle-walking values that fall outside it.
fn permute(index: u64, domain: u64, key: u64) -> u64 {
    let bits = (64 - (domain - 1).leading_zeros()).max(2);
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let mut x = index;
    loop {
        let (mut left, mut right) = (x >> half, x & mask);
        for round in 0..4u64 {
            let f = hash2(key ^ round, right) & mask;
            (left, right) = (right, left ^ f);
        }
        x = (left << half) | right;
        if x < domain {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for domain in [2u64, 3, 7, 10, 16, 17, 100, 1001] {
            let mut seen = vec![false; domain as usize];
            for i in 0..domain {
                let j = permute(i, domain, 42) as usize;
                assert!(!seen[j], "{domain}: {j} twice");
                seen[j] = true;
            }
        }
    }

    #[test]
    fn exponential_has_mean_one() {
        let mut rng = SplitMix::new(7);
        let n = 200_000;
        let mean = (0..n).map(|_| rng.next_exp()).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
    }
}
