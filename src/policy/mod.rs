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

use alloc::{string::String, vec::Vec};
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds one header; names are compared ignoring ASCII case.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect())
    }
}
