//! Strings for messages without `core::fmt`: `format!` brings the formatting machinery (~3 KB
//! of wasm) for what is only ever text and whole numbers here.

use alloc::string::String;

/// Something `cat!` can append.
pub trait Piece {
    fn push_to(&self, out: &mut String);
}

impl Piece for str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

impl Piece for u64 {
    fn push_to(&self, out: &mut String) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = *self;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            out.push(d as char);
        }
    }
}

impl Piece for u32 {
    fn push_to(&self, out: &mut String) {
        u64::from(*self).push_to(out);
    }
}

impl Piece for usize {
    fn push_to(&self, out: &mut String) {
        (*self as u64).push_to(out);
    }
}

/// As JavaScript would print it for whole numbers below 10^18; others to at most nine decimals;
/// from 10^18 up and below a millionth in exponent form (`1e+20`, `1e-10`), the mantissa to six
/// significant digits. For messages: close to JavaScript's, never misleading by much.
impl Piece for f64 {
    fn push_to(&self, out: &mut String) {
        let v = *self;
        if v.is_nan() {
            return out.push_str("NaN");
        }
        if v < 0.0 {
            out.push('-');
        }
        let a = v.abs();
        if a.is_infinite() {
            return out.push_str("Infinity");
        }
        if a >= 1e18 || (a > 0.0 && a < 1e-6) {
            let (mut m, mut e) = (a, 0i32);
            while m >= 10.0 {
                (m, e) = (m / 10.0, e + 1);
            }
            while m < 1.0 {
                (m, e) = (m * 10.0, e - 1);
            }
            // Six significant digits, carried into the exponent when they round up to 10.
            let mut digits = (m * 1e5 + 0.5) as u64;
            if digits >= 1_000_000 {
                (digits, e) = (digits / 10, e + 1);
            }
            push_fraction(out, digits / 100_000, digits % 100_000, 10_000);
            out.push_str(if e < 0 { "e-" } else { "e+" });
            return e.unsigned_abs().push_to(out);
        }
        let mut whole = a as u64;
        let mut nanos = ((a - whole as f64) * 1e9 + 0.5) as u64;
        if nanos == 1_000_000_000 {
            (whole, nanos) = (whole + 1, 0);
        }
        push_fraction(out, whole, nanos, 100_000_000);
    }
}

/// `whole`, then the digits of `frac` (`div` the place of its first) without trailing zeros.
fn push_fraction(out: &mut String, whole: u64, mut frac: u64, mut div: u64) {
    whole.push_to(out);
    if frac > 0 {
        out.push('.');
        while frac > 0 && div > 0 {
            out.push((b'0' + (frac / div) as u8) as char);
            frac %= div;
            div /= 10;
        }
    }
}

/// Concatenates its arguments (`&str`, `String`, whole numbers, `f64`) into a `String`.
macro_rules! cat {
    ($($piece:expr),+ $(,)?) => {{
        let mut out = alloc::string::String::new();
        $($crate::text::Piece::push_to(&$piece, &mut out);)+
        out
    }};
}
pub(crate) use cat;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_javascript_would() {
        for (v, s) in [
            (3.0, "3"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.9999999, "1.9999999"),
            (1.9999999999, "2"),
            (100.0000001, "100.0000001"),
            (0.000001, "0.000001"),
            (12.0625, "12.0625"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
            (2e18, "2e+18"),
            (1e20, "1e+20"),
            (1e30, "1e+30"),
            (1.5e300, "1.5e+300"),
            (1e-10, "1e-10"),
            (-2.5e-7, "-2.5e-7"),
            (9.9999999e-8, "1e-7"),
            (123_456_789_012_345_680.0, "123456789012345680"),
        ] {
            assert_eq!(cat!(v), s);
        }
        assert_eq!(cat!("a", 0u64, " ", u64::MAX, String::from("!"), 7u32, 9usize), "a0 18446744073709551615!79");
    }
}
