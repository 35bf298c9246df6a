// The declared type names, imported by name as a TypeScript user would write them.
import type {
  RetryOptions,
  RetryFnOptions,
  RetryEvent,
  RetryFetch,
  Retry,
  AttemptContext,
  RouteInfo,
  FallbackRoute,
  BackoffOptions,
  BudgetOptions,
  BreakerOptions,
  BreakerState,
  Jitter,
  RetryReport,
  AttemptRecord,
  RetryState,
  RetryCallOptions,
  RetryRequestInit,
} from "llm-retry";
import { createRetryFetch, createRetry, retry } from "llm-retry";

const jitter: Jitter = "equal";
const backoff: BackoffOptions = { initialMs: 10, jitter };
const budget: BudgetOptions = { maxTokens: 10 };
const breaker: BreakerOptions = { cooldownMs: 1000 };
const fallback: FallbackRoute = { model: "m" };
export const options: RetryOptions = {
  maxAttempts: 2,
  backoff,
  budget,
  breaker,
  fallbacks: [fallback],
  onEvent: (e: RetryEvent) => void e.type,
};
export const fnOptions: RetryFnOptions = { maxAttempts: 2, signal: AbortSignal.timeout(1000) };
export const f: RetryFetch = createRetryFetch(options);
export const r: Retry = createRetry({ maxAttempts: 2 });
export const p: Promise<number> = retry((ctx: AttemptContext) => {
  const route: RouteInfo = ctx.route;
  return route.index;
}, fnOptions);
export function inspect(report: RetryReport, state: RetryState): BreakerState[] {
  const rec: AttemptRecord | undefined = report.attempts[0];
  void rec;
  return Object.values(state.breakers).map((b) => b.state);
}

const perCall: RetryCallOptions = { maxAttempts: 1, fallbacks: [{ model: "m" }] };
export const init: RetryRequestInit = { method: "POST", retry: perCall };
export const once: Promise<string> = r(() => "x", { ...perCall, signal: AbortSignal.timeout(1000) });
// retryInit's result goes where an SDK's per-request fetchOptions go (they may not set body,
// headers, method or signal), and is a fetch init too.
import { retryInit } from "llm-retry";
import type { RetryInit } from "llm-retry";
const viaSdk: RetryInit = retryInit({ maxAttempts: 1 });
export const asInit: RequestInit = viaSdk;
// @ts-expect-error: not a per-call option
retryInit({ backoff: {} });
