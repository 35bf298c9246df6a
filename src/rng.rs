//! splitmix64: a small, fast generator for jitter, seeded by the caller. The policy core takes
//! its random numbers as arguments; this is what the host layer (seeded from the host's crypto)
//! and the simulation (seeded for repeatability) draw them from.

/// Advances `state` and returns a number uniform in `[0, 1)`.
pub fn next_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn stays_in_range_and_moves() {
        let mut s = 1;
        let xs: Vec<f64> = (0..1000).map(|_| super::next_f64(&mut s)).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
    }
}
