//! The few float operations the crate needs. The wasm build is `no_std`, which has no float
//! math library; these are exact for the ranges they are used on.

// `is_whole` and `ceil` serve the wasm layer's option checks; natively only the tests use them.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

/// `x` is a whole number (and within ±2⁶³).
pub fn is_whole(x: f64) -> bool {
    x as i64 as f64 == x
}

/// The smallest whole number ≥ `x`, for `x` in `[0, 2⁶³)`.
pub fn ceil(x: f64) -> u64 {
    let t = x as u64;
    t + ((t as f64) < x) as u64
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
        for x in [
            0.0,
            0.1,
            0.5,
            1.0,
            1.5,
            2.0,
            2.5,
            1e6,
            86_400_000.0,
            9.007e15,
        ] {
            assert_eq!(ceil(x), x.ceil() as u64, "ceil {x}");
            assert_eq!(is_whole(x), x.fract() == 0.0, "is_whole {x}");
            assert_eq!(is_whole(-x), x.fract() == 0.0, "is_whole -{x}");
        }
        assert!(!is_whole(f64::NAN) && !is_whole(f64::INFINITY));
        for (x, n) in [
            (2.0, 0),
            (2.0, 10),
            (1.5, 7),
            (3.0, 40),
            (0.5, 3),
            (10.0, 400),
            (1.1, 1023),
        ] {
            assert_eq!(powi(x, n), x.powi(n as i32), "powi {x} {n}");
        }
    }
}
