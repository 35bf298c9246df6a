import { call } from "../call.js";

export const runtime = "edge";

export function GET(request) {
  return call(request, typeof EdgeRuntime === "string" ? "edge" : "nodejs");
}
