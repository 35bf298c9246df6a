// Shared by the route handlers: one chat call through llm-retry to the mock provider named by
// ?mock=, answered as JSON saying what the caller got.
import { createRetryFetch, retryReport } from "llm-retry";

const retryFetch = createRetryFetch({ backoff: { initialMs: 20, maxMs: 50 } });

export async function call(request, runtime) {
  const mock = new URL(request.url).searchParams.get("mock");
  try {
    const res = await retryFetch(`${mock}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }),
    });
    const body = await res.json();
    return Response.json({
      runtime,
      status: res.status,
      attempts: retryReport(res).attempts.length,
      content: body.choices?.[0]?.message?.content,
    });
  } catch (e) {
    return Response.json({ runtime, error: String(e?.stack ?? e) }, { status: 500 });
  }
}
