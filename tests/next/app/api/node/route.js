import { call } from "../call.js";

export function GET(request) {
  return call(request, typeof EdgeRuntime === "string" ? "edge" : "nodejs");
}
