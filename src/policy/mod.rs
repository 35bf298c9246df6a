//! The pure core: every retry decision, and nothing else.
//!
//! Nothing in this module reads a clock, draws a random number or performs I/O. Time is passed
//! in as milliseconds since the Unix epoch (`now_ms`) and randomness as a number in `[0, 1)`
//! (`rand`), so the whole policy compiles and is tested natively, and runs the same in every
//! JavaScript host.
//!
//! | module       | decides                                                           |
//! |--------------|-------------------------------------------------------------------|
//! | [`backoff`]  | how long to wait before retry *n* (exponential, four jitter modes) |
//! | [`hints`]    | what the server asked for (`Retry-After` and the providers' headers) |
//! | [`classify`] | whether one attempt's outcome is worth retrying, and why          |
//! | [`breaker`]  | whether a route is healthy enough to be sent anything             |
//! | [`health`]   | what instances sharing a store tell each other, and how it merges  |
//! | [`budget`]   | whether this client may retry at all right now                    |
//! | [`pacing`]   | when a route can take the next request, learned from the provider  |
//! | [`stream`]   | whether an event stream has shown content yet, or failed before it  |
//! | [`engine`]   | the composition: attempt, wait or stop, as a state machine        |
//! | [`config`]   | the validated settings and their defaults                          |

use alloc::string::String;
pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod classify;
pub mod config;
pub mod engine;
pub mod health;
pub mod hints;
pub mod pacing;
pub mod stream;

/// Response headers as the core sees them: the few that matter, looked up case-insensitively.
/// Kept as one text, `name\nvalue\n` per header, the form the host hands them over in (one string
/// across the boundary, one allocation): a name or value holding a newline, which no valid header
/// does, is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(String);

impl Headers {
    pub fn new() -> Self {
        Self(String::new())
    }

    /// Headers from `name\nvalue\n…` (the host's `headers.js` writes them so); an unpaired last
    /// line is ignored.
    pub fn from_lines(lines: String) -> Self {
        Self(lines)
    }

    /// Adds one header; names are compared ignoring ASCII case.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !name.contains('\n') && !value.contains('\n') {
            for part in [name, value] {
                self.0.push_str(part);
                self.0.push('\n');
            }
        }
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A scan for newlines byte by byte, a name's length compared before its letters: lines
        // are short, and `split('\n')`'s searcher (set up per line, then `memchr` over machine
        // words) cost more than it saved — with OpenAI's rate-limit headers the pacer's lookups
        // were ~18% of a call over a stub.
        let text = self.0.as_bytes();
        // Most responses bring none of the headers the core reads (a success without rate-limit
        // headers), and the pacer and classifier ask for seven names each time.
        if text.is_empty() {
            return None;
        }
        let mut at = 0;
        while let Some(n) = line_end(text, at) {
            // A value runs to the next newline or to the end of the text.
            let v = line_end(text, n + 1).unwrap_or(text.len());
            if n - at == name.len() && text.get(at..n).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes())) {
                // Cut at newlines, which are ASCII: `get` cannot fail here, but keeps str
                // slicing's panic path out of the wasm.
                return self.0.get(n + 1..v);
            }
            at = v + 1;
        }
        None
    }
}

/// The index of the first newline from `at` on, if there is one.
fn line_end(text: &[u8], mut at: usize) -> Option<usize> {
    while *text.get(at)? != b'\n' {
        at += 1;
    }
    Some(at)
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (n, v) in iter {
            headers.push(n, v);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn headers_are_found_by_name_in_any_case_first_value_first() {
        let h: Headers =
            [("Retry-After", "2"), ("x-ratelimit-reset-requests", "6ms"), ("retry-after", "9")].into_iter().collect();
        assert_eq!(h.get("retry-after"), Some("2"));
        assert_eq!(h.get("X-RateLimit-Reset-Requests"), Some("6ms"));
        assert_eq!(h.get("x-ratelimit-reset"), None, "a prefix is not a name");
        assert_eq!(h.get("6ms"), None, "a value is not a name");
        assert_eq!(h, Headers::from_lines("Retry-After\n2\nx-ratelimit-reset-requests\n6ms\nretry-after\n9\n".into()));
    }

    #[test]
    fn a_header_holding_a_newline_is_left_out_and_shifts_nothing() {
        let mut h = Headers::new();
        h.push("retry-after", "1\nx-should-retry\nfalse");
        h.push("x\ny", "2");
        h.push("retry-after-ms", "");
        assert_eq!(h.get("x-should-retry"), None);
        assert_eq!(h.get("retry-after"), None);
        assert_eq!(h.get("retry-after-ms"), Some(""), "an empty value is a value");
        // An unpaired last line, as a host could hand over, is no header.
        assert_eq!(Headers::from_lines("retry-after\n3\nx-should-retry".into()).get("x-should-retry"), None);
        assert_eq!(Headers::from_lines("retry-after\n3".into()).get("retry-after"), Some("3"));
    }

    proptest::proptest! {
        /// A lookup finds what reading the text as `name, value` line pairs finds, for any text a
        /// host could hand over (empty lines, a missing last newline, non-ASCII, any case).
        #[test]
        fn a_lookup_reads_the_text_as_line_pairs(
            text in proptest::string::string_regex("(a|A|b|é|\n){0,12}").unwrap(),
            name in proptest::string::string_regex("(a|A|b|é){0,2}").unwrap(),
        ) {
            let mut lines = text.split('\n');
            let mut pairs = core::iter::from_fn(|| Some((lines.next()?, lines.next()?)));
            let expected = pairs.find(|(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| v);
            let headers = Headers::from_lines(text.clone());
            proptest::prop_assert_eq!(headers.get(&name), expected);
        }
    }
}
