import { describe, expect, it } from "vitest";
import { Api, ApiError } from "../../src/api/http";
import { parseSse, streamEvents } from "../../src/api/sse";

async function* chunks(...parts: string[]): AsyncGenerator<string> {
  yield* parts;
}

async function all<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

function sseResponse(parts: string[], init: ResponseInit = {}): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(encoder.encode(p));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8" }, ...init });
}

describe("parseSse", () => {
  it("dispatches on blank lines, joins data lines, skips comments and names the default event", async () => {
    const events = await all(parseSse(chunks(": keep-alive\n\nevent: meta\ndata: {\"runId\":\"r1\"}\n\ndata: a\ndata: b\n\n")));
    expect(events).toEqual([{ event: "meta", data: "{\"runId\":\"r1\"}" }, { event: "message", data: "a\nb" }]);
  });

  it("handles CRLF, CR and a CRLF split across two chunks", async () => {
    const events = await all(parseSse(chunks("event: token\r", "\ndata: x\r\n\r", "\nevent: token\rdata: y\r\r")));
    expect(events).toEqual([{ event: "token", data: "x" }, { event: "token", data: "y" }]);
  });

  it("keeps a value's spaces except the one after the colon, and a field split across chunks", async () => {
    const events = await all(parseSse(chunks("event: tok", "en\ndata:  two spaces\n", "\n")));
    expect(events).toEqual([{ event: "token", data: " two spaces" }]);
  });

  it("does not dispatch an event the stream cut off before its blank line", async () => {
    expect(await all(parseSse(chunks("event: done\ndata: {}\n")))).toEqual([]);
  });
});

describe("streamEvents", () => {
  const api = (response: Response | Error) => new Api({ base: "http://127.0.0.1:8765", token: "t0ken", fetch: async () => {
    if (response instanceof Error) throw response;
    return response;
  } });

  it("posts JSON and yields decoded events as they arrive, split anywhere", async () => {
    let seen: RequestInit | undefined;
    const client = new Api({ base: "http://127.0.0.1:8765", token: "t0ken", fetch: async (_url, init) => {
      seen = init;
      return sseResponse(["event: meta\ndata: {\"runId\":\"r1\",\"mod", "el\":\"m\"}\n\nevent: token\ndata: {\"text\":\"Hé\"}\n\n", "event: done\ndata: {}\n\n"]);
    } });
    const events = await all(streamEvents(client, "/v1/summarize", { text: "x" }, new AbortController().signal));
    expect(events).toEqual([
      { event: "meta", data: { runId: "r1", model: "m" } },
      { event: "token", data: { text: "Hé" } },
      { event: "done", data: {} },
    ]);
    expect(seen?.method).toBe("POST");
    expect(seen?.body).toBe(JSON.stringify({ text: "x" }));
    expect(new Headers(seen?.headers).get("accept")).toBe("text/event-stream");
  });

  it("keeps a UTF-8 character that is split between two network chunks whole", async () => {
    const bytes = new TextEncoder().encode("event: token\ndata: {\"text\":\"€\"}\n\n");
    const cut = bytes.indexOf(0xe2) + 1;
    const body = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(bytes.slice(0, cut)); c.enqueue(bytes.slice(cut)); c.close(); } });
    const response = new Response(body, { headers: { "content-type": "text/event-stream" } });
    const events = await all(streamEvents(api(response), "/v1/summarize", {}, new AbortController().signal));
    expect(events).toEqual([{ event: "token", data: { text: "€" } }]);
  });

  it("turns a 429 into a busy ApiError with the server's Retry-After", async () => {
    const response = new Response(JSON.stringify({ code: "busy", message: "the model is busy", retryAfter: 3 }), {
      status: 429, headers: { "content-type": "application/json", "retry-after": "7" },
    });
    const error = await all(streamEvents(api(response), "/v1/summarize", {}, new AbortController().signal)).catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ kind: "busy", status: 429, code: "busy", retryAfter: 7, message: "the model is busy" });
  });

  it("says the server is unreachable when fetch gets no answer at all", async () => {
    const error = await all(streamEvents(api(new TypeError("Failed to fetch")), "/v1/summarize", {}, new AbortController().signal)).catch((e) => e);
    expect(error).toMatchObject({ kind: "unreachable" });
  });

  it("refuses a 200 that is not an event stream", async () => {
    const response = new Response("<html>proxy</html>", { headers: { "content-type": "text/html" } });
    const error = await all(streamEvents(api(response), "/v1/summarize", {}, new AbortController().signal)).catch((e) => e);
    expect(error).toMatchObject({ kind: "stream" });
  });
});
