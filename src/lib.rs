//! Retry, backoff, server wait hints, circuit breaking and fallback for LLM API calls.
//!
//! - [`policy`]: the pure core. Every decision — how long to wait, whether a failure is worth
//!   retrying, when a provider is unhealthy — as plain Rust driven by time and randomness passed
//!   in. Compiles and tests natively.
//! - `js` (wasm32 only): the host layer that drives the core against `fetch`, JS timers,
//!   `AbortSignal`, the host's clock and crypto, and exports the JavaScript API
//!   (`createRetryFetch`, `retry`).

#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]

extern crate alloc;

/// Without std a panic is a trap: no message formatting, no unwinding machinery. Nothing in the
/// crate panics on outside data; a trap here would be a bug in the crate itself.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

mod num;
pub mod policy;
mod text;

#[cfg(any(target_arch = "wasm32", feature = "sim"))]
pub mod rng;

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(target_arch = "wasm32")]
pub mod js;
