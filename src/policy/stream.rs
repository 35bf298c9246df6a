//! Streams: whether a `text/event-stream` response has shown anything worth keeping yet.
//!
//! # Why
//! A streamed LLM call can fail after its `200`: Anthropic sends `event: error` with
//! `overloaded_error` after `message_start`, OpenAI's Responses API `response.created` and then
//! `error` or `response.failed`, a chat-completions stream `data: {"error": …}`; or the provider
//! stalls before the first token. Until the first *content* event nothing has been shown to
//! anyone, so such a failure is a failed attempt like its HTTP twin — retried, or sent to the next
//! route — and the caller still gets one clean stream. After the first content event the call is
//! *committed*: bytes pass through, and an error is the caller's to see (a replay would duplicate
//! text).
//!
//! # How
//! [`Watch`] is fed the body's bytes as they come, split anywhere (inside a UTF-8 sequence,
//! between `\r` and `\n`). Its [`SseReader`] turns them into events per the SSE spec, and each
//! event gets a [`Verdict`]:
//! - **preamble**, proving nothing: OpenAI chat's role-only first delta (`content: ""`), Responses'
//!   `response.created` / `in_progress` / `queued` / `output_item.added` / `content_part.added`,
//!   Anthropic's `message_start`, `ping`, a `content_block_start` without text;
//! - **content**, the commit point: a text, tool-call, refusal or function-call delta, a finish
//!   reason, `response.*.delta`, `content_block_delta`, `message_delta`, `[DONE]`, and any event of
//!   a shape not known here (the safe default: deliver it);
//! - **error**, with the HTTP status it stands for: overloaded / `api_error` / `server_error` as
//!   529 or 500, `rate_limit_error` as 429, `insufficient_quota` / billing as the quota 429;
//!   `invalid_request_error` and the like are the caller's own and are delivered as they came.
//!
//! The preamble held before the commit is bounded ([`MAX_PREAMBLE`]); past it, the stream commits.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

/// Bytes held before the commit at most: a chatty preamble commits rather than grow memory.
pub const MAX_PREAMBLE: usize = 64 * 1024;

/// One server-sent event: its `event:` name (empty when none) and its `data:` lines joined, as
/// bytes (what is read of them is ASCII; UTF-8 text passes through untouched).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// An incremental SSE parser (the WHATWG event-stream format): lines end in `\n`, `\r\n` or
/// `\r`; a blank line dispatches the event; `:` starts a comment; `data` lines join with `\n`.
#[derive(Clone, Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    /// The last byte fed was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    event: Event,
    has_data: bool,
    /// How many bytes of a leading byte order mark have been read (3 once past the start).
    bom: u8,
}

/// UTF-8's byte order mark, which the spec strips from the start of a stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

impl SseReader {
    /// Feeds bytes; calls `out` for each event completed by them, and stops reading there when
    /// it answers `Break` (the rest of `bytes` is then not read).
    pub fn feed(&mut self, bytes: &[u8], out: &mut impl FnMut(Event) -> ControlFlow<()>) {
        for &b in bytes {
            if self.bom < 3 {
                if BOM.get(usize::from(self.bom)) == Some(&b) {
                    self.bom += 1;
                    continue;
                }
                // Not a mark: what was taken for its start was the first line's.
                self.line.extend_from_slice(BOM.get(..usize::from(self.bom)).unwrap_or_default());
                self.bom = 3;
            }
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if self.end_line(out).is_break() {
                        return;
                    }
                }
                _ => {
                    self.after_cr = false;
                    // A line longer than the preamble bound is cut there: it commits anyway.
                    if self.line.len() < MAX_PREAMBLE {
                        self.line.push(b);
                    }
                }
            }
        }
    }

    fn end_line(&mut self, out: &mut impl FnMut(Event) -> ControlFlow<()>) -> ControlFlow<()> {
        let line = core::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                return out(core::mem::take(&mut self.event));
            }
            self.event.name.clear();
            return ControlFlow::Continue(());
        }
        if line[0] == b':' {
            return ControlFlow::Continue(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &b""[..]),
        };
        match field {
            b"event" => self.event.name = value.to_vec(),
            b"data" => {
                if self.has_data {
                    self.event.data.push(b'\n');
                }
                self.event.data.extend_from_slice(value);
                self.has_data = true;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// What one event says about the attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Proves nothing yet: held.
    Preamble,
    /// The commit point: deliver from here on (also an error that is the caller's own).
    Content,
    /// A failure inside the stream: `status` is its HTTP twin, `body` what the classifier reads.
    Failed { status: u16, body: Option<String> },
}

/// The verdict on one event.
pub fn verdict(e: &Event) -> Verdict {
    let data = e.data.trim_ascii();
    if data.first() != Some(&b'{') {
        return Verdict::Content; // `[DONE]`, or a shape not known here
    }
    let kind = field(data, b"type").and_then(text).filter(|k| !k.is_empty()).unwrap_or(&e.name);
    match kind {
        b"error" => {
            // Anthropic: {"type":"error","error":{"type":…}}; Responses: {"type":"error","code":…}.
            let err = field(data, b"error").filter(|v| v.first() == Some(&b'{')).unwrap_or(data);
            failed(err)
        }
        b"response.failed" => failed(field(data, b"response").and_then(|r| field(r, b"error")).unwrap_or(b"{}")),
        b"response.created"
        | b"response.in_progress"
        | b"response.queued"
        | b"response.output_item.added"
        | b"response.content_part.added"
        | b"message_start"
        | b"ping" => Verdict::Preamble,
        b"content_block_start" => {
            let text = field(data, b"content_block").and_then(|b| field(b, b"text"));
            if text.is_some_and(|t| t != b"\"\"") {
                Verdict::Content
            } else {
                Verdict::Preamble
            }
        }
        b"" | b"message" => chat_chunk(data),
        _ => Verdict::Content,
    }
}

/// A chat-completions chunk: `{"choices":[{"delta":{…},"finish_reason":…}]}`, or `{"error":…}`.
fn chat_chunk(data: &[u8]) -> Verdict {
    if let Some(err) = field(data, b"error").filter(|v| v.first() == Some(&b'{')) {
        return failed(err);
    }
    let Some(choices) = field(data, b"choices") else {
        return Verdict::Content; // not a chat chunk: an unknown shape commits
    };
    let filled = |v: &[u8]| !matches!(v, b"null" | b"\"\"" | b"[]" | b"{}");
    // Any delta field but the role, when filled: text, tool calls, a refusal, and what this
    // reader does not know by name — a reasoning model's streamed thinking (`reasoning_content`,
    // `reasoning`), audio — is output someone may be shown, so it commits (the safe default).
    let content = items(choices).any(|choice| {
        let delta = field(choice, b"delta").unwrap_or_default();
        entries(delta).any(|(k, v)| !matches!(k, b"role" | b"obfuscation") && filled(v))
            || field(choice, b"finish_reason").is_some_and(filled)
    });
    if content {
        Verdict::Content
    } else {
        Verdict::Preamble
    }
}

/// An in-band error object (`{"type":…,"code":…,"message":…}`) as its HTTP twin.
fn failed(err: &[u8]) -> Verdict {
    let code = [field(err, b"code"), field(err, b"type")];
    let is = |words: &[&[u8]]| {
        let mut names = code.iter().flatten().filter_map(|c| text(c));
        names.any(|c| words.iter().any(|w| c.windows(w.len()).any(|x| x == *w)))
    };
    let status = if is(&[b"quota", b"billing"]) {
        return Verdict::Failed { status: 429, body: Some(QUOTA_BODY.into()) };
    } else if is(&[b"rate_limit"]) {
        429
    } else if is(&[b"overloaded"]) {
        529
    } else if is(&[
        b"invalid_request",
        b"authentication",
        b"permission",
        b"not_found",
        b"too_large",
        b"context_length",
        b"invalid_prompt",
    ]) {
        return Verdict::Content; // the caller's own: delivered as it came
    } else {
        500 // server_error, api_error, and what is not known: a failure before anything was shown
    };
    Verdict::Failed { status, body: None }
}

/// What the classifier reads as an exhausted quota.
const QUOTA_BODY: &str = r#"{"error":{"code":"insufficient_quota"}}"#;

/// The state of one attempt's stream before its commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing shown yet: keep reading (and holding what was read).
    Pending,
    /// Deliver the stream, from its first byte.
    Commit,
    Failed {
        status: u16,
        body: Option<String>,
    },
}

/// Watches one attempt's stream up to its commit point (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Watch {
    reader: SseReader,
    held: usize,
}

impl Watch {
    /// Feeds the next bytes of the body. Once the state is decided, the rest of `bytes` is not
    /// read (a first chunk may carry most of a short stream), and nothing more may be fed.
    pub fn feed(&mut self, bytes: &[u8]) -> State {
        self.held = self.held.saturating_add(bytes.len());
        let mut state = State::Pending;
        self.reader.feed(bytes, &mut |e| {
            state = match verdict(&e) {
                Verdict::Preamble => return ControlFlow::Continue(()),
                Verdict::Content => State::Commit,
                Verdict::Failed { status, body } => State::Failed { status, body },
            };
            ControlFlow::Break(())
        });
        if state == State::Pending && self.held > MAX_PREAMBLE {
            return State::Commit;
        }
        state
    }

    /// The body ended before the commit: broken, however much it held (an empty one too: a
    /// `200` event stream with no events has shown nothing either), so a failed attempt.
    pub fn ended(&self) -> State {
        State::Failed { status: 502, body: None }
    }
}

// A JSON reader just large enough for the verdict: it finds a field's raw value without building
// anything, and never fails loudly — malformed input finds nothing.

/// The raw text of `key`'s value in the JSON object `obj`, if it has one.
fn field<'a>(obj: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    entries(obj).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The keys (without their quotes) and raw values of a JSON object's text, up to anything
/// malformed.
fn entries(obj: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let b = obj;
    let start = ws(b, 0);
    let mut i = if b.get(start) == Some(&b'{') { start + 1 } else { b.len() };
    core::iter::from_fn(move || {
        i = ws(b, i);
        let k_end = skip(b, i, 0)?;
        let k = b.get(i + 1..k_end.checked_sub(1)?)?;
        let colon = ws(b, k_end);
        i = b.len();
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let v_start = ws(b, colon + 1);
        let v_end = skip(b, v_start, 0)?;
        let v = b.get(v_start..v_end)?;
        let next = ws(b, v_end);
        if b.get(next) == Some(&b',') {
            i = next + 1;
        }
        Some((k, v))
    })
}

/// The elements of a JSON array's raw text.
fn items(arr: &[u8]) -> impl Iterator<Item = &[u8]> {
    let b = arr;
    let mut i = if b.first() == Some(&b'[') { 1 } else { b.len() };
    core::iter::from_fn(move || {
        i = ws(b, i);
        if matches!(b.get(i), None | Some(b']')) {
            return None;
        }
        let end = skip(b, i, 0)?;
        let item = arr.get(i..end)?;
        i = ws(b, end);
        if b.get(i) == Some(&b',') {
            i += 1;
        } else {
            i = b.len();
        }
        Some(item)
    })
}

/// A JSON string's content, when it has no escapes (type and code names never do).
#[allow(clippy::manual_contains)]
fn text(raw: &[u8]) -> Option<&[u8]> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // A loop, not `contains`: its `memchr` over machine words is 0.4 KB of wasm for a few bytes.
    (!inner.iter().any(|&b| b == b'\\')).then_some(inner)
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end of the value starting at `i`; `None` if malformed or nested deeper than 64.
fn skip(b: &[u8], i: usize, depth: u32) -> Option<usize> {
    match *b.get(i)? {
        b'"' => {
            let mut j = i + 1;
            loop {
                match *b.get(j)? {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
        }
        open @ (b'{' | b'[') => {
            if depth >= 64 {
                return None;
            }
            let close = if open == b'{' { b'}' } else { b']' };
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&close) {
                return Some(j + 1);
            }
            loop {
                j = skip(b, j, depth + 1)?;
                j = ws(b, j);
                match *b.get(j)? {
                    b':' if open == b'{' => j = ws(b, j + 1),
                    b',' => j = ws(b, j + 1),
                    c if c == close => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        _ => {
            let mut j = i;
            while b.get(j).is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':')) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn events(s: &str) -> Vec<Event> {
        events_in(&[s.as_bytes()])
    }

    /// The events of `chunks` fed one after another to one reader.
    fn events_in(chunks: &[&[u8]]) -> Vec<Event> {
        let mut out = vec![];
        let mut reader = SseReader::default();
        for chunk in chunks {
            reader.feed(chunk, &mut |e| {
                out.push(e);
                ControlFlow::Continue(())
            });
        }
        out
    }

    fn ev(name: &str, data: &str) -> Event {
        Event { name: name.as_bytes().to_vec(), data: data.as_bytes().to_vec() }
    }

    #[test]
    fn sse_lines_fields_and_comments() {
        let stream =
            ": hi\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\ndata: x\n\nevent: lone\n\n\rdata: y\r\rdata: h\u{e9}\n\n";
        let got = events(stream);
        assert_eq!(got, vec![ev("a", "1\n2"), ev("", "x"), ev("", "y"), ev("", "h\u{e9}")]);
        // The same events however the bytes are split: in two anywhere (between `\r` and `\n`
        // too), and one byte at a time.
        let b = stream.as_bytes();
        for cut in 0..=b.len() {
            assert_eq!(events_in(&[&b[..cut], &b[cut..]]), got, "cut at {cut}");
        }
        assert_eq!(events_in(&b.chunks(1).collect::<Vec<_>>()), got);
    }

    #[test]
    fn a_line_past_the_preamble_bound_is_cut_there() {
        let long = alloc::format!("data: {}\n\n", "x".repeat(MAX_PREAMBLE));
        let got = events_in(&[&long.as_bytes()[..1_000], &long.as_bytes()[1_000..]]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data.len(), MAX_PREAMBLE - "data: ".len());
    }

    #[test]
    fn json_fields() {
        let j = br#" { "a" : [1, {"b":"}"}], "type":"x\"y", "c": {"d": null}, "e":"" } "#;
        assert_eq!(field(j, b"a"), Some(&br#"[1, {"b":"}"}]"#[..]));
        assert_eq!(field(j, b"c").and_then(|c| field(c, b"d")), Some(&b"null"[..]));
        assert_eq!(field(j, b"type").and_then(text), None);
        assert_eq!(field(j, b"e"), Some(&b"\"\""[..]));
        let a = field(j, b"a").unwrap_or_default();
        assert_eq!(items(a).collect::<Vec<_>>(), vec![&b"1"[..], &br#"{"b":"}"}"#[..]]);
        assert_eq!(field(b"{\"a\":", b"a"), None);
        assert_eq!(field(b"[]", b"a"), None);
        let keys = |o: &'static [u8]| entries(o).map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(j), vec![&b"a"[..], b"type", b"c", b"e"]);
        assert_eq!(keys(b"{}"), Vec::<&[u8]>::new());
        // Up to what is malformed: a key with no value, a value with no key.
        assert_eq!(keys(br#"{"a":1,"b"}"#), vec![&b"a"[..]]);
        assert_eq!(keys(br#"{"a":1 "b":2}"#), vec![&b"a"[..]]);
    }

    #[test]
    fn verdicts() {
        use Verdict::*;
        let role = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(verdict(&ev("", role)), Preamble);
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        assert_eq!(verdict(&ev("", text)), Content);
        let tool = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}"#;
        assert_eq!(verdict(&ev("", tool)), Content);
        let chat_err = r#"{"error":{"message":"boom","type":"server_error","code":null}}"#;
        assert_eq!(verdict(&ev("", chat_err)), Failed { status: 500, body: None });
        assert_eq!(verdict(&ev("", "[DONE]")), Content);
        assert_eq!(verdict(&ev("response.created", r#"{"type":"response.created","response":{}}"#)), Preamble);
        assert_eq!(
            verdict(&ev("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":"x"}"#)),
            Content
        );
        let quota = r#"{"type":"error","code":"insufficient_quota","message":"You exceeded","param":null}"#;
        assert_eq!(verdict(&ev("error", quota)), Failed { status: 429, body: Some(QUOTA_BODY.into()) });
        let over = r#"{"type":"error","code":"server_is_overloaded","message":"busy"}"#;
        assert_eq!(verdict(&ev("error", over)), Failed { status: 529, body: None });
        let rf = r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"x"}}}"#;
        assert_eq!(verdict(&ev("response.failed", rf)), Failed { status: 500, body: None });
        assert_eq!(verdict(&ev("message_start", r#"{"type":"message_start","message":{}}"#)), Preamble);
        assert_eq!(verdict(&ev("ping", r#"{"type": "ping"}"#)), Preamble);
        let start = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        assert_eq!(verdict(&ev("content_block_start", start)), Preamble);
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(verdict(&ev("content_block_delta", delta)), Content);
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(verdict(&ev("error", overloaded)), Failed { status: 529, body: None });
        let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#;
        assert_eq!(verdict(&ev("error", limited)), Failed { status: 429, body: None });
        let own = r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#;
        assert_eq!(verdict(&ev("error", own)), Content);
        assert_eq!(verdict(&ev("", "plain text")), Content);
        assert_eq!(verdict(&ev("custom", r#"{"x":1}"#)), Content);
    }

    const ANTHROPIC_OVERLOADED: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded \u{1F525}\"}}\n\n";
    const OPENAI_GOOD: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"h\u{e9}llo\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n";

    /// Every split of a stream into two chunks gives the same state as the whole.
    #[test]
    fn the_same_state_for_every_split() {
        for (stream, want) in
            [(ANTHROPIC_OVERLOADED, State::Failed { status: 529, body: None }), (OPENAI_GOOD, State::Commit)]
        {
            let b = stream.as_bytes();
            for cut in 0..=b.len() {
                let mut w = Watch::default();
                let first = w.feed(&b[..cut]);
                let state = if first == State::Pending { w.feed(&b[cut..]) } else { first };
                assert_eq!(state, want, "cut at {cut}");
            }
            // And byte by byte.
            let mut w = Watch::default();
            let state = b.iter().map(|&x| w.feed(&[x])).find(|s| *s != State::Pending);
            assert_eq!(state, Some(want));
        }
    }

    #[test]
    fn a_long_preamble_commits_and_an_early_end_fails() {
        let mut w = Watch::default();
        let ping = "event: ping\ndata: {\"type\":\"ping\"}\n\n".repeat(2000);
        assert_eq!(w.feed(ping.as_bytes()), State::Commit);
        let mut w = Watch::default();
        assert_eq!(w.feed(b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"), State::Pending);
        assert_eq!(w.ended(), State::Failed { status: 502, body: None });
        // A 200 event stream with an empty body showed nothing either.
        assert_eq!(Watch::default().ended(), State::Failed { status: 502, body: None });
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_first_line() {
        let error = "\u{feff}data: {\"error\":{\"type\":\"server_error\"}}\n\n";
        for cut in 0..=3 {
            let mut w = Watch::default();
            let state = [&error.as_bytes()[..cut], &error.as_bytes()[cut..]].iter().map(|c| w.feed(c)).last();
            assert_eq!(state, Some(State::Failed { status: 500, body: None }), "cut at {cut}");
        }
        // Only at the start, and only a whole mark: a partial one is the line's own bytes.
        assert_eq!(events_in(&[b"\xef\xbb", b"data: x\n\n"]), vec![]);
        assert_eq!(events("\u{feff}\u{feff}data: x\n\n"), vec![]);
        assert_eq!(events("data: \u{feff}x\n\n"), vec![ev("", "\u{feff}x")]);
    }

    #[test]
    fn a_reasoning_delta_commits_a_role_alone_does_not() {
        use Verdict::*;
        let chunk = |delta: &str| format!(r#"{{"choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#);
        for delta in [
            r#"{"role":"assistant","content":null,"reasoning_content":"Let me think"}"#,
            r#"{"reasoning":"Hmm"}"#,
            r#"{"content":"","audio":{"id":"a1","data":"UklGR"}}"#,
            r#"{ "content" : "hi" }"#,
        ] {
            assert_eq!(verdict(&ev("", &chunk(delta))), Content, "{delta}");
        }
        for delta in [
            r#"{"role":"assistant","content":"","refusal":null}"#,
            r#"{"role":"assistant","reasoning_content":"","tool_calls":[]}"#,
            r#"{"role":"assistant","obfuscation":"x1y2"}"#,
            r#"{}"#,
        ] {
            assert_eq!(verdict(&ev("", &chunk(delta))), Preamble, "{delta}");
        }
    }
}
