import { describe, expect, it } from "vitest";
import { Api, ApiError, NO_TOKEN } from "../../src/api/http";
import { streamEvents } from "../../src/api/sse";
import { watchWorkflow } from "../../src/shared/workflow";

const BASE = "http://127.0.0.1:8765";

function json(status: number, payload: unknown): Response {
  return new Response(JSON.stringify(payload), { status, headers: { "content-type": "application/json" } });
}

function events(): Response {
  return new Response("event: token\ndata: {\"text\":\"hi\"}\n\nevent: done\ndata: {}\n\n", { headers: { "content-type": "text/event-stream" } });
}

const REFUSED = { code: "unauthorized", message: "the access token is not valid (it may have been rotated with `deskpilot token rotate`)" };

/** An Api over a fake server that records every request and answers with `answer`. */
function recording(token: string | null, answer: (url: string, init: RequestInit) => Response = () => json(200, {})) {
  const seen: { url: string; method: string; headers: Headers }[] = [];
  const api = new Api({ base: BASE, token, fetch: async (url, init = {}) => {
    seen.push({ url: String(url), method: init.method ?? "GET", headers: new Headers(init.headers) });
    return answer(String(url), init);
  } });
  return { api, seen };
}

async function drain<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error("expected a refusal");
}

describe("the access token on every call", () => {
  it("is sent as Authorization: Bearer on GET, POST, PUT and the event streams", async () => {
    const { api, seen } = recording("s3cret", (url) => (url.endsWith("/v1/summarize") ? events() : json(200, {})));
    await api.get("/v1/models");
    await api.post("/v1/actions/a1/decision", { decision: "approve" });
    await api.put("/v1/automations/follow_ups", { enabled: true });
    expect(await drain(streamEvents(api, "/v1/summarize", { text: "x" }, new AbortController().signal))).toHaveLength(2);
    expect(seen.map((r) => r.method)).toEqual(["GET", "POST", "PUT", "POST"]);
    for (const request of seen) expect(request.headers.get("authorization")).toBe("Bearer s3cret");
    // The callers' own headers are kept beside it.
    expect(seen[1].headers.get("content-type")).toBe("application/json");
    expect(seen[3].headers.get("accept")).toBe("text/event-stream");
  });

  it("is set last, so a caller's headers cannot replace or drop it", async () => {
    const { api, seen } = recording("s3cret");
    await api.request("/v1/models", { headers: { Authorization: "Bearer forged", Accept: "application/json" } });
    await api.request("/v1/models", { headers: new Headers() });
    await api.request("/v1/models", { headers: [["X-Other", "1"]] });
    expect(seen.map((r) => r.headers.get("authorization"))).toEqual(["Bearer s3cret", "Bearer s3cret", "Bearer s3cret"]);
  });

  it("never goes to another origin", async () => {
    const { api, seen } = recording("s3cret");
    await expect(api.get("https://evil.example/steal")).rejects.toThrow(/not this server/);
    await expect(api.get("//evil.example/steal")).rejects.toThrow(/not this server/);
    expect(seen).toEqual([]);
  });
});

describe("a 401: the token was rotated", () => {
  it("fails the call as unauthorized, tells the listeners once, and sends nothing more", async () => {
    let status = 200;
    const { api, seen } = recording("old", () => (status === 401 ? json(401, REFUSED) : json(200, {})));
    const told: ApiError[] = [];
    api.onRefused((e) => told.push(e));
    await api.get("/v1/models");
    expect(api.refused).toBeNull();

    status = 401;
    const first = await refusal(api.post("/v1/classify", { text: "x" }));
    expect(first).toMatchObject({ kind: "unauthorized", status: 401, code: "unauthorized" });
    expect(first.message).toContain("token rotate");
    expect(api.refused).toBe(first);

    // No retry loop: every later call, JSON or stream, fails at once with the same refusal, unsent.
    expect(await refusal(api.get("/v1/models"))).toBe(first);
    expect(await refusal(drain(streamEvents(api, "/v1/summarize", { text: "x" }, new AbortController().signal)))).toBe(first);
    expect(seen).toHaveLength(2);
    expect(told).toEqual([first]);
  });

  it("from an event stream, before its first event, is the same refusal", async () => {
    const { api, seen } = recording("old", () => json(401, REFUSED));
    const told: ApiError[] = [];
    api.onRefused((e) => told.push(e));
    const error = await refusal(drain(streamEvents(api, "/v1/draft-reply", { text: "x" }, new AbortController().signal)));
    expect(error).toMatchObject({ kind: "unauthorized", code: "unauthorized" });
    expect(told).toEqual([error]);
    expect(seen).toHaveLength(1);
  });

  it("said by two calls at once is told once", async () => {
    const { api } = recording("old", () => json(401, REFUSED));
    const told: ApiError[] = [];
    api.onRefused((e) => told.push(e));
    await Promise.allSettled([api.get("/v1/models"), api.get("/v1/index/status")]);
    expect(told).toHaveLength(1);
  });

  it("a listener that stopped listening is not told", async () => {
    const { api } = recording("old", () => json(401, REFUSED));
    const told: ApiError[] = [];
    const stop = api.onRefused((e) => told.push(e));
    stop();
    await refusal(api.get("/v1/models"));
    expect(told).toEqual([]);
  });

  it("ends a workflow's polling instead of retrying it with backoff", async () => {
    const { api, seen } = recording("old", () => json(401, REFUSED));
    const problems: string[] = [];
    const sleeps: number[] = [];
    const result = await watchWorkflow(api, "wf1", (e) => { if ("problem" in e) problems.push(e.problem.kind); },
      new AbortController().signal, { sleep: async (ms) => void sleeps.push(ms) });
    expect(result).toBeNull();
    expect(problems).toEqual(["unauthorized"]);
    expect(sleeps).toEqual([]);
    expect(seen).toHaveLength(1);
  });

  it("other errors leave the client working (a 403 is the local-only wall, not the token)", async () => {
    let status = 403;
    const { api } = recording("s3cret", () => json(status, status === 403 ? { code: "forbidden_origin", message: "no" } : { ok: true }));
    expect((await refusal(api.get("/v1/models"))).kind).toBe("forbidden");
    expect(api.refused).toBeNull();
    status = 200;
    await expect(api.get("/v1/models")).resolves.toEqual({ ok: true });
  });
});

describe("no token at start (the pane opened without its manifest's URL)", () => {
  it("sends nothing and fails every call, JSON or stream, as unauthorized with code no_token", async () => {
    for (const token of [null, ""]) {
      const { api, seen } = recording(token);
      expect(api.refused).toMatchObject({ kind: "unauthorized", code: NO_TOKEN });
      expect(await refusal(api.get("/healthz"))).toBe(api.refused);
      expect(await refusal(api.post("/v1/classify", {}))).toBe(api.refused);
      expect(await refusal(drain(streamEvents(api, "/v1/summarize", {}, new AbortController().signal)))).toBe(api.refused);
      expect(seen).toEqual([]);
    }
  });
});
