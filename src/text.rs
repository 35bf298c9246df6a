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

/// As JavaScript would print it for whole numbers; others to at most six decimals.
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
        if a >= 1e18 {
            ((a / 1e18) as u64).push_to(out);
            return out.push_str("e18+");
        }
        let mut whole = a as u64;
        let mut micros = ((a - whole as f64) * 1e6 + 0.5) as u64;
        if micros == 1_000_000 {
            (whole, micros) = (whole + 1, 0);
        }
        whole.push_to(out);
        if micros > 0 {
            out.push('.');
            let mut div = 100_000;
            while micros > 0 {
                out.push((b'0' + (micros / div) as u8) as char);
                micros %= div;
                div /= 10;
            }
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
            (1.9999999, "2"),
            (0.000001, "0.000001"),
            (12.0625, "12.0625"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
            (2e18, "2e18+"),
        ] {
            assert_eq!(cat!(v), s);
        }
        assert_eq!(cat!("a", 0u64, " ", u64::MAX, String::from("!"), 7u32, 9usize), "a0 18446744073709551615!79");
    }
}
