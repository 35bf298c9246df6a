// Typed usage of every export and option of llm-retry, checked (never run) by
//   npx tsc --noEmit -p tests/js
// The @ts-expect-error lines prove the declarations reject mistakes: if a declaration were too
// loose (e.g. `any`), the directive would be unused and tsc would fail.
import {
  createRetryFetch,
  retry,
  createRetry,
  retryReport,
  RetryError,
  CircuitOpenError,
  isRetryError,
  isCircuitOpenError,
  retryErrorOf,
} from "llm-retry";

// Types reached through the functions' signatures (names exported as types are in named-types.ts).
type Options = NonNullable<Parameters<typeof createRetryFetch>[0]>;
type Backoff = NonNullable<Options["backoff"]>;
type Jitter = NonNullable<Backoff["jitter"]>;
type Event = Parameters<NonNullable<Options["onEvent"]>>[0];
type WaitCause = Extract<Event, { type: "wait" }>["wait"];

const jitters: Jitter[] = ["full", "equal", "decorrelated", "none"];

const events: Event[] = [];

export const allOptions: Options = {
  maxAttempts: 4,
  backoff: { initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: jitters[0] },
  deadlineMs: 60_000,
  attemptTimeoutMs: 10_000,
  firstTokenTimeoutMs: 20_000,
  idleTimeoutMs: 30_000,
  retryOn: [408, 409, 429, 500, 502, 503, 504, 529],
  maxRetryAfterMs: 60_000,
  idempotent: false,
  budget: { maxTokens: 100, tokenRatio: 0.2 },
  breaker: { failureThreshold: 5, cooldownMs: 250, maxCooldownMs: 750 },
  pacing: true,
  fetch: globalThis.fetch,
  onEvent: (e) => {
    events.push(e);
    describeEvent(e);
  },
  // Beyond the first contract: fallback routes, header hygiene, a last resort.
  fallbacks: [
    { model: "gpt-4o-mini" },
    { url: "https://backup.example.test/v1/chat/completions", model: "other", headers: { authorization: "Bearer b" }, maxAttempts: 2 },
    { headers: [["x-k", "v"]] },
    { headers: new Headers({ "x-k": "v" }) },
  ],
  sensitiveHeaders: ["x-org-secret"],
  onExhausted: (report) => new Response(`gave up after ${report.attempts.length} attempts`, { status: 503 }),
};

export const switchedOff: Options = { budget: false, breaker: false };
export const partialBackoff: Options = { backoff: { jitter: "decorrelated" } };
export const customTransport: Options = {
  fetch: async (input: string | URL | Request, init?: RequestInit) => fetch(input, init),
};

export function describeEvent(e: Event): string {
  switch (e.type) {
    case "retry": {
      const attempt: number = e.attempt;
      const delayMs: number = e.delayMs;
      const reason: string = e.reason;
      const status: number | undefined = e.status;
      const hint: string | undefined = e.hint;
      return `retry ${attempt} in ${delayMs} ms (${reason}, ${status ?? "-"}, ${hint ?? "-"})`;
    }
    case "giveUp": {
      const reason: string = e.reason;
      const attempts: number = e.attempts;
      return `gave up after ${attempts}: ${reason}`;
    }
    case "success": {
      const attempts: number = e.attempts;
      const totalMs: number = e.totalMs;
      return `ok after ${attempts} in ${totalMs} ms`;
    }
    case "breaker": {
      const key: string = e.key;
      const from: string = e.from;
      const to: string = e.to;
      return `breaker ${key}: ${from} → ${to}`;
    }
    case "fallback": {
      const status: number | undefined = e.status;
      return `fallback ${e.from} → ${e.to} (${e.reason}, ${status ?? "-"})`;
    }
    case "streamError": {
      const phase: "after-commit" = e.phase;
      return `stream failed ${phase}: ${e.error}`;
    }
    case "commit": {
      const ms: number = e.firstTokenMs;
      return `stream committed on attempt ${e.attempt} after ${ms} ms`;
    }
    case "wait": {
      const wait: WaitCause = e.wait;
      return `waiting ${e.delayMs} ms for route ${e.route}: ${wait}`;
    }
    case "attempt": {
      const attempt: number = e.attempt;
      const callId: number = e.callId;
      return `call ${callId}: attempt ${attempt} on route ${e.route} (${e.model ?? "-"})`;
    }
    case "skip": {
      const reason: "circuit-open" | "cooling" | "pacing" = e.reason;
      const retryInMs: number = e.retryInMs;
      return `skipped route ${e.route}: ${reason}, back in ${retryInMs} ms`;
    }
    default: {
      const unreachable: never = e;
      return unreachable;
    }
  }
}

export async function useFetch(): Promise<void> {
  const f = createRetryFetch(allOptions);
  const plain = createRetryFetch();
  const asFetch: typeof fetch = f;
  const asSignature: (input: string | URL | Request, init?: RequestInit) => Promise<Response> = plain;

  const controller = new AbortController();
  const r1: Response = await f("https://api.example.test/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": "k" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [] }),
    signal: controller.signal,
  });
  const r2: Response = await asFetch(new URL("https://api.example.test/v1/models"));
  // One call's own options, under init.retry.
  await f("https://api.example.test/v1/chat/completions", { method: "POST", retry: { maxAttempts: 1, deadlineMs: 5_000, fallbacks: false } });
  await f("https://api.example.test/v1/chat/completions", { retry: false });
  // @ts-expect-error: backoff is the client's, not a call's
  await f("https://api.example.test/v1/chat/completions", { retry: { backoff: { initialMs: 1 } } });
  const id: number | undefined = retryReport(r2)?.id;
  void id;
  const r3: Response = await asSignature(new Request("https://api.example.test/v1/models"));
  const body: unknown = await r1.json();
  void [r2, r3, body];
}

export async function useReportAndState(): Promise<void> {
  const f = createRetryFetch();
  const res = await f("https://api.example.test/v1/models");
  const report = retryReport(res);
  if (report) {
    const n: number = report.attempts.length;
    const first = report.attempts[0];
    const status: number | undefined = first?.status;
    const reason: string | undefined = first?.reason;
    const waited: number | undefined = first?.waitedMs;
    const usedFallback: boolean = report.fallback;
    const skipped: number[] = report.skipped;
    const total: number = report.totalWaitMs + report.durationMs;
    void [n, status, reason, waited, usedFallback, skipped, total];
  }
  const state = f.exportState();
  const version: 1 = state.version;
  const restored = createRetryFetch();
  restored.restoreState(JSON.parse(JSON.stringify(state)));
  void version;
}

export async function useCreateRetry(): Promise<void> {
  const shared = createRetry({ maxAttempts: 2, breaker: { failureThreshold: 3 } });
  const controller = new AbortController();
  const value: number = await shared(({ attempt, route }) => attempt + route.index, { signal: controller.signal });
  const again: string = await shared(async () => "x");
  shared.restoreState(shared.exportState());
  const cancellable: string = await retry(() => "y", { signal: controller.signal, deadlineMs: 1000 });
  void [value, again, cancellable];
}

export async function useRetry(): Promise<void> {
  const text: string = await retry(
    async ({ attempt, signal, route }) => {
      const n: number = attempt;
      const s: AbortSignal = signal;
      void route;
      return `attempt ${n} ${s.aborted}`;
    },
    { maxAttempts: 3, backoff: { initialMs: 10 }, onEvent: describeEvent },
  );
  const num: number = await retry(() => 42);
  const obj: { id: string } = await retry(async () => ({ id: "x" }));
  void [text, num, obj];
}

export function classify(e: unknown): string {
  const ours = retryErrorOf(e);
  const wrapped: boolean = isRetryError(e) || isCircuitOpenError(e);
  void wrapped;
  if (ours instanceof RetryError) {
    const r: RetryError = ours;
    void r;
  }
  if (ours?.name === "RetryError") {
    const e = ours;
    const attempts: number = e.attempts;
    const status: number | undefined = e.status;
    const reason: string = e.reason;
    const cause: unknown = e.cause;
    const name: "RetryError" = e.name;
    const message: string = e.message;
    const attemptsSeen: number = e.report.attempts.length;
    void [cause, attemptsSeen];
    return `${name} ${message} ${attempts} ${status} ${reason}`;
  }
  if (ours?.name === "CircuitOpenError") {
    const e = ours;
    const retryInMs: number = e.retryInMs;
    const name: "CircuitOpenError" = e.name;
    return `${name} ${retryInMs}`;
  }
  if (e instanceof RetryError) {
    const asError: Error = e;
    return asError.message;
  }
  if (e instanceof CircuitOpenError) {
    const asError: Error = e;
    return asError.message;
  }
  return "other";
}

// ---- mistakes the declarations must reject ----

// @ts-expect-error maxAttempts is a number, not a string
createRetryFetch({ maxAttempts: "3" });

// @ts-expect-error unknown option (typo of maxAttempts)
createRetryFetch({ maxAtempts: 3 });

// @ts-expect-error jitter is a closed set of strings
createRetryFetch({ backoff: { jitter: "wild" } });

// @ts-expect-error onEvent is a function
createRetryFetch({ onEvent: "x" });

// @ts-expect-error budget is an object or false, not true
createRetryFetch({ budget: true });

// @ts-expect-error retry needs a function
retry(42);

// @ts-expect-error retry(fn) takes no transport: fn makes its own calls
retry(() => 1, { fetch: globalThis.fetch });

// @ts-expect-error a fallback route's model is a string
createRetryFetch({ fallbacks: [{ model: 4 }] });

// @ts-expect-error the result of retry is a Promise, not the value
export const notAwaited: string = retry(() => "x");

// A store of one's own: read and write, and optionally pace (asks in, one list of slots per ask out).
import { memoryHealthStore, type HealthStore, type PaceAsk } from "llm-retry";
const buckets = new Map<string, number>();
const paced: HealthStore = {
  read: (keys) => Object.fromEntries(keys.map((k) => [k, { openedAt: 0, openUntil: 0, closedAt: 0, cooledUntil: 0 }])),
  write: async () => {},
  pace: (asks: PaceAsk[]) => asks.map((a) => Array.from({ length: a.n }, () => Math.max(Date.now(), buckets.get(a.key) ?? 0) + (a.within ?? 0))),
};
createRetryFetch({ health: { store: paced, onError: (e, op) => console.log(op satisfies "read" | "write" | "pace", e) } });
createRetryFetch({ health: { store: memoryHealthStore() } });
// @ts-expect-error pace answers a list of slots per ask, not one number
createRetryFetch({ health: { store: { ...paced, pace: (asks: PaceAsk[]) => asks.map(() => 1) } } });
