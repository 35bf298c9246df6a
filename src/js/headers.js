// Response headers as the core reads them (policy/mod.rs `Headers`): one string of
// `name\nvalue\n` lines, so they cross in one call: the wait-hint headers of a response that
// failed, the rate-limit headers of one that succeeded.

/** `name\nvalue\n`, the form the wasm takes headers in (one string, one crossing: policy/mod.rs
 * Headers); "" for a header that is absent, or not a string, or holds a newline (no valid one does). */
export const line = (n, v) => (typeof v === "string" && !v.includes("\n") ? `${n}\n${v}\n` : "");

/** A response's headers of `names` (the core's wait-hint and rate-limit headers), as lines. */
export function hintHeaders(res, names) {
  let out = "";
  try {
    const h = res.headers;
    for (const n of names) out += line(n, h.get(n));
  } catch {}
  return out;
}

/** The two families of rate-limit headers for pacing: the headers whose presence marks the family
 * (the first is always read), those read whenever it is there, and token limits as [remaining,
 * reset] pairs whose reset is read only when the remaining may be 0: the core only uses a token
 * limit's reset when it is spent (`spent_reset` in hints.rs). */
const LIMITS = [
  {
    marks: ["x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"],
    always: ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
    spent: [["x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]],
  },
  {
    marks: ["anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining"],
    always: ["anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"],
    spent: [
      ["anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"],
      ["anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"],
      ["anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"],
    ],
  },
];
/** The family found last: looked for first (a process mostly talks to one provider). */
let lastLimits = 0;
/** Whether a remaining count may be 0 to the core (which reads "0", "00", "0.0"): no digit 1–9. */
const mayBeZero = (v) => {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 49 && c <= 57) return false;
  }
  return true;
};

/** A response's rate-limit headers for pacing, as lines (see `line`); undefined when it has none.
 * Each lookup costs (Node's `Headers.get` checks and lowercases the name), so the family seen
 * last is looked for first, a marker's value is kept, and a token limit's reset is read only
 * when that limit is spent: OpenAI's usual response takes four lookups, Anthropic's six, and one
 * with neither family four. (A response with both families, which no provider sends, is read as
 * the family seen last.) */
export function limitHeaders(h) {
  for (let j = 0; j < 2; j++) {
    const i = lastLimits ^ j;
    const { marks, always, spent } = LIMITS[i];
    for (const mark of marks) {
      const found = h.get(mark);
      if (found === null) continue;
      lastLimits = i;
      let out = "";
      for (const n of always) out += line(n, n === mark ? found : h.get(n));
      for (const [n, reset] of spent) {
        const v = n === mark ? found : h.get(n);
        if (v === null) continue;
        out += line(n, v);
        if (mayBeZero(v)) out += line(reset, h.get(reset));
      }
      return out;
    }
  }
  return undefined;
}
