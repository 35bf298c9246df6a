#![cfg(not(target_arch = "wasm32"))]
//! The stream verdict on the providers' recorded streams (tests/fixtures/sse), each split at every
//! byte position into two chunks, and fed byte by byte: the same state as the whole stream.

use llm_retry::policy::stream::{State, Watch};

fn run(chunks: &[&[u8]]) -> State {
    let mut w = Watch::default();
    for c in chunks {
        let s = w.feed(c);
        if s != State::Pending {
            return s;
        }
    }
    w.ended()
}

/// What each fixture must come to: commit, or a failure standing for this HTTP status.
fn expected(name: &str) -> Option<u16> {
    match name {
        n if n.contains("good") || n.contains("after-content") || n.contains("tool-call") => None,
        n if n.contains("invalid-request") => None, // the caller's own: delivered as it came
        n if n.contains("quota") || n.contains("rate-limit") => Some(429),
        n if n.contains("overloaded") => Some(529),
        _ => Some(500),
    }
}

#[test]
fn recorded_streams_give_the_same_state_at_every_split() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("sse") {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let bytes = std::fs::read(&path).expect("read");
        let whole = run(&[&bytes]);
        match (expected(&name), &whole) {
            (None, State::Commit) => {}
            (Some(want), State::Failed { status, .. }) if *status == want => {}
            (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
        for cut in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..cut], &bytes[cut..]]), whole, "{name} split at {cut}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&bytewise), whole, "{name} byte by byte");
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} fixtures");
}
