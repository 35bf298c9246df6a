//! The few float operations the crate needs. The wasm build is `no_std`, which has no float
//! math library; these are exact for the ranges they are used on.

// `ceil` serves the wasm layer's options; natively only the tests use it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// The smallest whole number ≥ `x`, for `x` ≥ 0; saturates at `u64::MAX`.
pub fn ceil(x: f64) -> u64 {
    let t = x as u64;
    t.saturating_add(((t as f64) < x) as u64)
}

/// `x` to the power `n`, by squaring (as compiler-rt's `__powidf2`).
pub fn powi(mut x: f64, mut n: u32) -> f64 {
    let mut r = 1.0;
    loop {
        if n & 1 == 1 {
            r *= x;
        }
        n >>= 1;
        if n == 0 {
            return r;
        }
        x *= x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_std() {
        for x in [0.0, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 1e6, 86_400_000.0, 9.007e15] {
            assert_eq!(ceil(x), x.ceil() as u64, "ceil {x}");
        }
        assert_eq!((ceil(1e300), ceil(f64::INFINITY), ceil(f64::NAN)), (u64::MAX, u64::MAX, 0));
        for (x, n) in [(2.0, 0), (2.0, 10), (1.5, 7), (3.0, 40), (0.5, 3), (10.0, 400), (1.1, 1023)] {
            assert_eq!(powi(x, n), x.powi(n as i32), "powi {x} {n}");
        }
    }
}
