// The event union narrows on `type`: a field that only some events carry cannot be read before
// narrowing (the README's first example once did, and failed under strict), and can after it.
import { createRetryFetch, retryReport } from "llm-retry";
import type { RetryEvent } from "llm-retry";

export function line(e: RetryEvent): string {
  // @ts-expect-error `reason` is not on every event (not on wait, commit, breaker, streamError)
  void e.reason;
  // @ts-expect-error `delayMs` is only on wait and retry events
  void e.delayMs;
  // @ts-expect-error `key` is only on breaker events
  void e.key;

  if (e.type === "retry") {
    const reason: string = e.reason;
    const delayMs: number = e.delayMs;
    const attempt: number = e.attempt;
    return `retry ${attempt}: ${reason} after ${delayMs} ms`;
  }
  if (e.type === "wait") {
    const delayMs: number = e.delayMs;
    // @ts-expect-error a wait event has no reason: it names its cause in `wait`
    void e.reason;
    return `wait ${delayMs} ms (${e.wait})`;
  }
  if (e.type === "fallback") {
    const to: number = e.to;
    const toModel: string | undefined = e.toModel;
    return `fallback to ${to} (${toModel ?? "-"}): ${e.reason}`;
  }
  if (e.type === "breaker") {
    const key: string = e.key;
    return `breaker ${key}: ${e.from} → ${e.to}`;
  }
  if (e.type === "skip") {
    const reason: "circuit-open" | "cooling" | "pacing" = e.reason;
    return `skip ${e.route}: ${reason}`;
  }
  return e.type;
}

// Narrowing inline, as an onEvent callback is usually written.
export const retryFetch = createRetryFetch({
  onEvent: (e) => {
    if (e.type === "giveUp") console.error(e.reason, e.attempts, e.status ?? "-");
    if (e.type === "success" && e.fallback) console.error("served by route", e.route);
  },
});

export async function servedBy(): Promise<string | undefined> {
  const res = await retryFetch("https://api.example.test/v1/models");
  // @ts-expect-error retryReport returns undefined for a value it does not know
  void retryReport(res).model;
  return retryReport(res)?.model;
}
